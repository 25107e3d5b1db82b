"""Where each `AudioEncoder` tensor lives in Hugging Face checkpoints (WhisperEncoder, Qwen2-Audio).

Our names are the released Qwen-Audio v1 names without `transformer.audio.`, so v1 needs no table; Whisper-large-v2
(the encoder's initialisation) and Qwen2-Audio (an export target) use the names below. The table is code so that
the converters and the tests that compare against transformers share one truth.
"""
from __future__ import annotations

import re

QWEN_AUDIO_V1_PREFIX = "transformer.audio."

_WHISPER_BLOCK_PARTS = {
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "mlp.0": "fc1",
    "mlp.2": "fc2",
    "mlp_ln": "final_layer_norm",
}
_WHISPER_TOP_MODULES = {"conv1": "conv1", "conv2": "conv2", "ln_post": "layer_norm"}


def hf_whisper_encoder_key(name: str) -> str:
    """Our state-dict key -> HF `WhisperEncoder` key (also `Qwen2AudioEncoder`'s); proj and bos/eos have none."""
    if name == "positional_embedding":
        return "embed_positions.weight"
    block = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", name)
    if block and block[2] in _WHISPER_BLOCK_PARTS:
        return f"layers.{block[1]}.{_WHISPER_BLOCK_PARTS[block[2]]}.{block[3]}"
    module, _, tensor = name.rpartition(".")
    if module in _WHISPER_TOP_MODULES:
        return f"{_WHISPER_TOP_MODULES[module]}.{tensor}"
    raise KeyError(f"{name}: no counterpart in a Whisper encoder (only the Qwen-Audio adapter has it)")


def hf_qwen2_audio_key(name: str) -> str:
    """Our state-dict key -> HF `Qwen2AudioForConditionalGeneration` key; bos/eos have none (text tokens there)."""
    if name.startswith("proj."):
        return "multi_modal_projector.linear." + name.removeprefix("proj.")
    if name.startswith("audio_bos_eos_token."):
        raise KeyError(f"{name}: Qwen2-Audio frames audio with text tokens of its LM vocabulary, not an embedding")
    return "audio_tower." + hf_whisper_encoder_key(name)
