"""The audio frontend: files -> 16 kHz mono waveforms -> Whisper log-mel -> SpecAugment, and the encoder lengths."""
from megatron_qwen_audio.audio.decode import AudioDecodeError, AudioInfo, load_audio, probe_audio
from megatron_qwen_audio.audio.features import log_mel
from megatron_qwen_audio.audio.lengths import (
    HOP_LENGTH,
    MAX_MEL_FRAMES,
    SAMPLE_RATE,
    audio_span_length,
    audio_token_count,
    encoder_frame_count,
    mel_frame_count,
)
from megatron_qwen_audio.audio.specaugment import SpecAugmentConfig, augment_seed, spec_augment

__all__ = [
    "AudioDecodeError",
    "AudioInfo",
    "HOP_LENGTH",
    "MAX_MEL_FRAMES",
    "SAMPLE_RATE",
    "SpecAugmentConfig",
    "audio_span_length",
    "audio_token_count",
    "augment_seed",
    "encoder_frame_count",
    "load_audio",
    "log_mel",
    "mel_frame_count",
    "probe_audio",
    "spec_augment",
]
