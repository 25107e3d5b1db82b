"""The model: the audio encoder and adapter (Whisper-large-v2 layout), the Qwen decoder on megatron-core, and the
combined pipeline-aware model that writes encoded audio over the decoder input's audio spans.

Reading order: varlen_attention (attention within the clips / samples laid end to end) -> audio_encoder ->
encoder_tensor_parallel (clips split over TP ranks) -> audio_splice -> decoder_spec (+ sdpa_attention) ->
qwen_audio_model; parameter_shards and audio_encoder_keys map checkpoints (the converters
themselves are in megatron_qwen_audio/convert/).

The megatron-based names are exported lazily (imported on first access): importing megatron-core takes seconds, the
encoder alone does not need it, and training.config (which qwen_audio_model reads) itself imports the encoder.
"""
from importlib import import_module

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
from megatron_qwen_audio.model.audio_splice import splice_audio
from megatron_qwen_audio.model.parameter_shards import (
    full_parameter_name,
    load_full_state,
    resize_vocab_rows,
    tensor_parallel_shard,
)

_MEGATRON_EXPORTS = {  # name -> module of this package
    "QwenAudioModel": "qwen_audio_model",
    "SdpaAttention": "sdpa_attention",
    "pipeline_layout": "decoder_spec",
    "qwen_decoder_layer_spec": "decoder_spec",
    "transformer_config": "decoder_spec",
    "allreduce_encoder_grads": "encoder_tensor_parallel",
    "clip_share": "encoder_tensor_parallel",
    "finalize_model_grads": "encoder_tensor_parallel",
    "gather_encoded_rows": "encoder_tensor_parallel",
}


def __getattr__(name: str):
    if name not in _MEGATRON_EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MEGATRON_EXPORTS[name]}"), name)


__all__ = [
    "QWEN_AUDIO_V1_PREFIX",
    "AudioEncoder",
    "AudioEncoderConfig",
    "EncodedAudio",
    "EncodedFrames",
    "QwenAudioModel",
    "SdpaAttention",
    "allreduce_encoder_grads",
    "clip_share",
    "finalize_model_grads",
    "full_parameter_name",
    "gather_encoded_rows",
    "hf_qwen2_audio_key",
    "hf_whisper_encoder_key",
    "load_full_state",
    "pipeline_layout",
    "qwen_decoder_layer_spec",
    "resize_vocab_rows",
    "sinusoids",
    "splice_audio",
    "tensor_parallel_shard",
    "transformer_config",
]
