"""The Qwen decoder in the two checkpoint layouts users bring: Qwen-7B's own (v1, also Qwen-Audio's) and Qwen2's.

Both have the same math as our megatron decoder; three tensors change shape on the way:

- attention: megatron's `linear_qkv` stacks the rows per key/value group, [q of the group's heads; k of the group;
  v of the group] for group 0, then group 1, ..., so that a tensor-parallel rank's block of rows is whole groups.
  Qwen2 keeps q_proj [heads*d, h], k_proj / v_proj [groups*d, h]; v1 fuses them as c_attn = [q; k; v] (not per
  group). Biases likewise.
- MLP: megatron's `linear_fc1` is [gate; up] (SwiGLU: silu(first half) * second). Qwen2 names them gate_proj and
  up_proj. **v1 trap: its MLP is c_proj(w1(x) * silu(w2(x))), so w2 is the gate and w1 the up projection.**
- vocabulary rows: our embedding and head have the padded row count of the model (see `VocabRows`).

    ours (full model)                                   Qwen2 (`model.` prefix)            Qwen v1 (`transformer.`)
    embedding.word_embeddings.weight                    embed_tokens.weight                wte.weight
    decoder.layers.N.input_layernorm.weight             layers.N.input_layernorm.weight    h.N.ln_1.weight
    decoder.layers.N.self_attention.linear_qkv.{w,b}    layers.N.self_attn.{q,k,v}_proj    h.N.attn.c_attn
    decoder.layers.N.self_attention.linear_proj.weight  layers.N.self_attn.o_proj.weight   h.N.attn.c_proj.weight
    decoder.layers.N.pre_mlp_layernorm.weight           layers.N.post_attention_layernorm  h.N.ln_2.weight
    decoder.layers.N.mlp.linear_fc1.weight              layers.N.mlp.{gate,up}_proj        h.N.mlp.{w2,w1}
    decoder.layers.N.mlp.linear_fc2.weight              layers.N.mlp.down_proj.weight      h.N.mlp.c_proj.weight
    decoder.final_layernorm.weight                      norm.weight                        ln_f.weight
    output_layer.weight                                 lm_head.weight (no prefix)         lm_head.weight
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from megatron_qwen_audio.convert.tensor_plan import TensorRule, renamed


def interleave_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, query_groups: int) -> torch.Tensor:
    """Separate q [heads*d, ...], k and v [groups*d, ...] -> megatron's fused rows [q_g; k_g; v_g for each group g]."""
    per_group = [part.chunk(query_groups, dim=0) for part in (query, key, value)]
    return torch.cat([row for group in zip(*per_group) for row in group], dim=0)


def split_qkv(fused: torch.Tensor, heads: int, query_groups: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of `interleave_qkv`: megatron's fused rows -> (q, k, v)."""
    head_dim = fused.shape[0] // (heads + 2 * query_groups)
    per_group = fused.reshape(query_groups, -1, *fused.shape[1:])
    query, key, value = per_group.split([heads // query_groups * head_dim, head_dim, head_dim], dim=1)
    return tuple(part.reshape(-1, *fused.shape[1:]) for part in (query, key, value))


@dataclass(frozen=True)
class VocabRows:
    """Rows of the embedding and LM head: a checkpoint holds `vocab` rows, our model `padded` (>= vocab).

    Importing a checkpoint with fewer rows than `vocab` (Qwen-7B's 151,936 into Qwen-Audio's 155,947) keeps its rows
    untouched and initialises the new ones from a normal distribution with each hidden dimension's mean and standard
    deviation over the existing rows (seeded): new tokens start in distribution and distinct from each other, which
    matters because stage 1 trains with the embedding frozen and must still tell the new tag tokens apart. Rows past
    `vocab` (padding for tensor parallelism) are zero and never used. Exporting writes the first `vocab` rows.
    """

    vocab: int
    padded: int
    seed: int

    def to_ours(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.shape[0] > self.vocab:
            raise ValueError(f"{tensor.shape[0]} vocabulary rows is more than the model's vocab_size {self.vocab}")
        if tensor.is_meta:
            return torch.empty(self.padded, *tensor.shape[1:], dtype=tensor.dtype, device="meta")
        new_rows = self.vocab - tensor.shape[0]
        padding = tensor.new_zeros(self.padded - self.vocab, *tensor.shape[1:])
        if new_rows == 0:
            return torch.cat([tensor, padding])
        generator = torch.Generator().manual_seed(self.seed)
        existing = tensor.float()
        fresh = existing.mean(0) + existing.std(0) * torch.randn(new_rows, *tensor.shape[1:], generator=generator)
        return torch.cat([tensor, fresh.to(tensor.dtype), padding])

    def to_theirs(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor[: self.vocab]


def vocab_rule(ours: str, theirs: str, rows: VocabRows) -> TensorRule:
    """A vocabulary-indexed tensor (embedding or LM head) with its rows resized each way."""
    return TensorRule((ours,), (theirs,), lambda t: (rows.to_ours(t),), lambda t: (rows.to_theirs(t),))


def _qwen2_layer_rules(ours: str, theirs: str, heads: int, groups: int) -> list[TensorRule]:
    rules = [renamed(ours + a, theirs + b) for a, b in (
        ("input_layernorm.weight", "input_layernorm.weight"),
        ("self_attention.linear_proj.weight", "self_attn.o_proj.weight"),
        ("pre_mlp_layernorm.weight", "post_attention_layernorm.weight"),
        ("mlp.linear_fc2.weight", "mlp.down_proj.weight"),
    )]
    for tensor in ("weight", "bias"):
        rules.append(TensorRule(
            (ours + f"self_attention.linear_qkv.{tensor}",),
            tuple(theirs + f"self_attn.{part}_proj.{tensor}" for part in "qkv"),
            lambda q, k, v: (interleave_qkv(q, k, v, groups),),
            lambda fused: split_qkv(fused, heads, groups)))
    rules.append(TensorRule((ours + "mlp.linear_fc1.weight",), (theirs + "mlp.gate_proj.weight",
                                                                theirs + "mlp.up_proj.weight"),
                            lambda gate, up: (torch.cat([gate, up]),), lambda fc1: tuple(fc1.chunk(2))))
    return rules


def _qwen_v1_layer_rules(ours: str, theirs: str, heads: int) -> list[TensorRule]:
    rules = [renamed(ours + a, theirs + b) for a, b in (
        ("input_layernorm.weight", "ln_1.weight"),
        ("self_attention.linear_proj.weight", "attn.c_proj.weight"),
        ("pre_mlp_layernorm.weight", "ln_2.weight"),
        ("mlp.linear_fc2.weight", "mlp.c_proj.weight"),
    )]
    for tensor in ("weight", "bias"):
        rules.append(TensorRule(
            (ours + f"self_attention.linear_qkv.{tensor}",), (theirs + f"attn.c_attn.{tensor}",),
            lambda fused: (interleave_qkv(*fused.chunk(3), heads),),
            lambda fused: (torch.cat(split_qkv(fused, heads, heads)),)))
    # w2 is the gate, w1 the up projection (see the module docstring)
    rules.append(TensorRule((ours + "mlp.linear_fc1.weight",), (theirs + "mlp.w2.weight", theirs + "mlp.w1.weight"),
                            lambda gate, up: (torch.cat([gate, up]),), lambda fc1: tuple(fc1.chunk(2))))
    return rules


def qwen2_decoder_rules(layers: int, heads: int, groups: int, rows: VocabRows, prefix: str = "model.",
                        head: str = "lm_head.weight") -> list[TensorRule]:
    """A Qwen2 checkpoint's decoder; `prefix` is where Qwen2Model's tensors live (Qwen2-Audio:
    `language_model.model.`)."""
    rules = [vocab_rule("embedding.word_embeddings.weight", prefix + "embed_tokens.weight", rows),
             renamed("decoder.final_layernorm.weight", prefix + "norm.weight"),
             vocab_rule("output_layer.weight", head, rows)]
    for layer in range(layers):
        rules += _qwen2_layer_rules(f"decoder.layers.{layer}.", f"{prefix}layers.{layer}.", heads, groups)
    return rules


def qwen_v1_decoder_rules(layers: int, heads: int, rows: VocabRows) -> list[TensorRule]:
    """A Qwen-7B (v1 layout, also the released Qwen-Audio's) checkpoint's decoder."""
    rules = [vocab_rule("embedding.word_embeddings.weight", "transformer.wte.weight", rows),
             renamed("decoder.final_layernorm.weight", "transformer.ln_f.weight"),
             vocab_rule("output_layer.weight", "lm_head.weight", rows)]
    for layer in range(layers):
        rules += _qwen_v1_layer_rules(f"decoder.layers.{layer}.", f"transformer.h.{layer}.", heads)
    return rules
