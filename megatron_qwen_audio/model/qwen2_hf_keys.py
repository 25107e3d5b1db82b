"""Hugging Face `Qwen2ForCausalLM` tensors -> the full (TP=1, PP=1) megatron decoder tensors of `QwenAudioModel`.

Qwen2 has the Qwen-7B decoder's math (separate q/k/v with bias, gate/up/down, RMSNorm, untied head), so it is the
numerical reference of the decoder and the layout Qwen2-Audio exports use. Two tensors change shape on the way:

- attention: HF keeps q_proj [heads*d, h], k_proj and v_proj [groups*d, h] (bias likewise); megatron's `linear_qkv`
  stacks them per key/value group, [q of the group's heads; k of the group; v of the group] for group 0, then
  group 1, ... so that a tensor-parallel rank's contiguous block of rows is whole groups;
- MLP: HF's gate_proj and up_proj become megatron's `linear_fc1` = [gate; up] (SwiGLU: silu(first half) * second).

    HF Qwen2ForCausalLM                                  QwenAudioModel (full)
    model.embed_tokens.weight                            embedding.word_embeddings.weight
    model.layers.N.input_layernorm.weight                decoder.layers.N.input_layernorm.weight
    model.layers.N.self_attn.{q,k,v}_proj.{weight,bias}  decoder.layers.N.self_attention.linear_qkv.{weight,bias}
    model.layers.N.self_attn.o_proj.weight               decoder.layers.N.self_attention.linear_proj.weight
    model.layers.N.post_attention_layernorm.weight       decoder.layers.N.pre_mlp_layernorm.weight
    model.layers.N.mlp.{gate,up}_proj.weight             decoder.layers.N.mlp.linear_fc1.weight
    model.layers.N.mlp.down_proj.weight                  decoder.layers.N.mlp.linear_fc2.weight
    model.norm.weight                                    decoder.final_layernorm.weight
    lm_head.weight                                       output_layer.weight
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

_RENAMED = {
    "model.embed_tokens.weight": "embedding.word_embeddings.weight",
    "model.norm.weight": "decoder.final_layernorm.weight",
    "lm_head.weight": "output_layer.weight",
}
_LAYER_RENAMED = {
    "input_layernorm.weight": "input_layernorm.weight",
    "self_attn.o_proj.weight": "self_attention.linear_proj.weight",
    "post_attention_layernorm.weight": "pre_mlp_layernorm.weight",
    "mlp.down_proj.weight": "mlp.linear_fc2.weight",
}


def interleave_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, query_groups: int) -> torch.Tensor:
    """Separate q [heads*d, ...], k and v [groups*d, ...] -> megatron's fused rows [q_g; k_g; v_g for each group g]."""
    per_group = [part.chunk(query_groups, dim=0) for part in (query, key, value)]
    return torch.cat([row for group in zip(*per_group) for row in group], dim=0)


def megatron_state_from_qwen2(hf_state: Mapping[str, torch.Tensor], layers: int,
                              query_groups: int) -> dict[str, torch.Tensor]:
    """Every decoder tensor of a Qwen2ForCausalLM state dict under its full QwenAudioModel name.

    `query_groups` is the HF config's num_key_value_heads (Qwen-7B: = heads). A missing HF tensor is a KeyError naming
    it. The vocabulary rows are copied as they are; `parameter_shards.load_full_state` pads them to the model's.
    """
    def take(name: str) -> torch.Tensor:
        if name not in hf_state:
            raise KeyError(f"{name}: missing from the Qwen2 state dict; is it a Qwen2ForCausalLM with {layers} layers?")
        return hf_state[name]

    state = {ours: take(theirs) for theirs, ours in _RENAMED.items()}
    for layer in range(layers):
        hf, ours = f"model.layers.{layer}.", f"decoder.layers.{layer}."
        for theirs, mine in _LAYER_RENAMED.items():
            state[ours + mine] = take(hf + theirs)
        for tensor in ("weight", "bias"):
            state[ours + f"self_attention.linear_qkv.{tensor}"] = interleave_qkv(
                *(take(hf + f"self_attn.{part}_proj.{tensor}") for part in ("q", "k", "v")), query_groups)
        state[ours + "mlp.linear_fc1.weight"] = torch.cat(
            [take(hf + "mlp.gate_proj.weight"), take(hf + "mlp.up_proj.weight")], dim=0)
    return state
