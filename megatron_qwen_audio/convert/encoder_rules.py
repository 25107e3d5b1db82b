"""The audio encoder in the checkpoint layouts it is imported from and exported to.

Our names are Qwen-Audio v1's without `transformer.audio.` (= openai-whisper's `encoder.*` plus the adapter); the
Hugging Face Whisper names come from `model.audio_encoder_keys`. Whisper checkpoints have no adapter: its projection
and audio bos/eos are freshly initialised (`fresh_adapter_plan`), its final `layer_norm` becomes `ln_post`.
"""
from __future__ import annotations

import torch

from megatron_qwen_audio.convert.tensor_plan import Derived, TensorPlan, TensorRule, renamed
from megatron_qwen_audio.model.audio_encoder import AudioEncoder, AudioEncoderConfig
from megatron_qwen_audio.model.audio_encoder_keys import QWEN_AUDIO_V1_PREFIX, hf_whisper_encoder_key

ENCODER = "audio_encoder."
ADAPTER_ONLY = ("proj.", "audio_bos_eos_token.")  # tensors a Whisper checkpoint does not have


def encoder_tensor_names(config: AudioEncoderConfig) -> list[str]:
    """Every tensor of the encoder's state dict (positions included), in our names, without building weights."""
    with torch.device("meta"):
        return list(AudioEncoder(config).state_dict())


def whisper_encoder_rules(config: AudioEncoderConfig, prefix: str, hf_names: bool) -> list[TensorRule]:
    """A Whisper encoder: Hugging Face names (`hf_names`) or openai-whisper's, under `prefix`."""
    return [renamed(ENCODER + name, prefix + (hf_whisper_encoder_key(name) if hf_names else name))
            for name in encoder_tensor_names(config) if not name.startswith(ADAPTER_ONLY)]


def qwen_audio_v1_encoder_rules(config: AudioEncoderConfig) -> list[TensorRule]:
    """The released Qwen-Audio's `transformer.audio.*`: our names, adapter included."""
    return [renamed(ENCODER + name, QWEN_AUDIO_V1_PREFIX + name) for name in encoder_tensor_names(config)]


def qwen2_audio_encoder_rules(config: AudioEncoderConfig, tower: str, projector: str) -> list[TensorRule]:
    """Qwen2-Audio's audio tower (Hugging Face Whisper names) and projector; its bos/eos are vocabulary rows (see
    `qwen_audio_formats`)."""
    rules = whisper_encoder_rules(config, tower, hf_names=True)
    rules += [renamed(ENCODER + f"proj.{tensor}", f"{projector}linear.{tensor}") for tensor in ("weight", "bias")]
    return rules


def fresh_adapter_plan(config: AudioEncoderConfig, token_embedding: Derived, seed: int) -> TensorPlan:
    """The adapter of an encoder imported from Whisper: seeded, as the model would initialise it, with one change.

    The projection is nn.Linear's default (uniform within 1/sqrt(d_model)). The audio bos/eos vectors enter the
    decoder next to token embeddings, so they are drawn at the scale of the decoder's embedding (its standard
    deviation) rather than nn.Embedding's N(0, 1), which would be an outlier of 20-100x the tokens' size.
    """
    generator = torch.Generator().manual_seed(seed)
    bound = config.d_model ** -0.5
    weight = (torch.rand(config.output_dim, config.d_model, generator=generator) * 2 - 1) * bound
    bias = (torch.rand(config.output_dim, generator=generator) * 2 - 1) * bound
    unit_normal = torch.randn(2, config.output_dim, generator=generator)

    def bos_eos(embedding: torch.Tensor) -> torch.Tensor:
        if embedding.is_meta:
            return unit_normal.to("meta")
        return unit_normal * embedding.float().std()

    return {
        ENCODER + "proj.weight": Derived(None, (), lambda: weight),
        ENCODER + "proj.bias": Derived(None, (), lambda: bias),
        ENCODER + "audio_bos_eos_token.weight": Derived(token_embedding.files, token_embedding.sources, bos_eos),
    }
