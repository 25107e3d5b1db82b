"""The model: the audio encoder and adapter (Whisper-large-v2 layout) that feed audio spans to the Qwen decoder."""
from megatron_qwen_audio.model.audio_encoder import (
    AudioEncoder,
    AudioEncoderConfig,
    EncodedAudio,
    EncodedFrames,
    sinusoids,
)
from megatron_qwen_audio.model.audio_encoder_keys import (
    QWEN_AUDIO_V1_PREFIX,
    hf_qwen2_audio_key,
    hf_whisper_encoder_key,
)

__all__ = [
    "QWEN_AUDIO_V1_PREFIX",
    "AudioEncoder",
    "AudioEncoderConfig",
    "EncodedAudio",
    "EncodedFrames",
    "hf_qwen2_audio_key",
    "hf_whisper_encoder_key",
    "sinusoids",
]
