"""Full-model tensors (TP=1, PP=1 names and shapes) <-> the shard one rank of a TPxPP layout holds.

Converters load a full checkpoint into any layout, and the layout tests compare each rank's gradients with the
matching slice of a single-process run; both need the same answer to "which part of which full tensor is this
parameter". Names: a pipeline stage numbers its decoder layers from 0 (`decoder.layers.0.` on every stage); the full
model numbers them globally, so stage i's layer j is full layer `layer_offset + j` (`QwenAudioModel.layer_offset`).

Tensor parallelism (megatron-core local spec):
- column-parallel weights (qkv, fc1, word embedding, LM head) are split along their output rows; the qkv rows are
  already in megatron's per-group [q heads; k; v] order, so a contiguous block of rows is a block of whole groups;
- the SwiGLU fc1 is stored [gate; up]: each rank holds its rows of gate followed by its rows of up;
- row-parallel weights (attention output, fc2) are split along their input columns;
- norms, the audio encoder (replicated over the TP group) and everything else are held whole.
Vocabulary rows are padded to a multiple of `vocab_pad_multiple x tensor_parallel` (training.config.padded_vocab), so
the full word embedding and LM head of one layout can have more rows than another's: `resize_vocab_rows`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

_COLUMN_PARALLEL = (
    "embedding.word_embeddings.weight",
    "self_attention.linear_qkv.weight",
    "self_attention.linear_qkv.bias",
    "output_layer.weight",
)
_ROW_PARALLEL = ("self_attention.linear_proj.weight", "mlp.linear_fc2.weight")
_GATED_FC1 = "mlp.linear_fc1.weight"
VOCAB_ROW_PARAMETERS = ("embedding.word_embeddings.weight", "output_layer.weight")
_LAYER_INDEX = re.compile(r"^decoder\.layers\.(\d+)\.")


def full_parameter_name(local_name: str, layer_offset: int) -> str:
    """A stage's parameter name -> the full model's name (decoder layers renumbered by the stage's offset)."""
    match = _LAYER_INDEX.match(local_name)
    if match is None:
        return local_name
    return f"decoder.layers.{int(match.group(1)) + layer_offset}." + local_name[match.end():]


def tensor_parallel_shard(full: torch.Tensor, name: str, tp_rank: int, tp_size: int) -> torch.Tensor:
    """The part of the full tensor `name` that tensor-parallel rank `tp_rank` of `tp_size` holds."""
    if name.endswith(_GATED_FC1):
        gate, up = full.chunk(2, dim=0)
        return torch.cat([gate.chunk(tp_size, dim=0)[tp_rank], up.chunk(tp_size, dim=0)[tp_rank]], dim=0)
    if name.endswith(_COLUMN_PARALLEL):
        return full.chunk(tp_size, dim=0)[tp_rank]
    if name.endswith(_ROW_PARALLEL):
        return full.chunk(tp_size, dim=1)[tp_rank]
    return full


def resize_vocab_rows(full: torch.Tensor, rows: int) -> torch.Tensor:
    """Zero-pad or trim a vocabulary-indexed tensor to `rows` rows (rows past the real vocabulary are never used:
    no input token has their id, and the model masks their logits)."""
    if full.shape[0] >= rows:
        return full[:rows]
    return torch.cat([full, full.new_zeros(rows - full.shape[0], *full.shape[1:])])


@torch.no_grad()
def load_full_state(model: nn.Module, full_state: Mapping[str, torch.Tensor], layer_offset: int, tp_rank: int,
                    tp_size: int) -> None:
    """Copy this rank's shard of every parameter of `model` (one pipeline stage) from the full-model tensors.

    The word embedding and LM head are resized to the model's padded vocabulary first, so a full state from a layout
    with another padding loads. A parameter missing from `full_state`, or a shard of the wrong shape, is an error.
    """
    for name, parameter in model.named_parameters():
        full_name = full_parameter_name(name, layer_offset)
        if full_name not in full_state:
            raise KeyError(f"{full_name}: not in the full state (it has {len(full_state)} tensors); the checkpoint "
                           "does not match the model's shape")
        full = full_state[full_name]
        if name in VOCAB_ROW_PARAMETERS:
            full = resize_vocab_rows(full, parameter.shape[0] * tp_size)
        shard = tensor_parallel_shard(full, name, tp_rank, tp_size)
        if shard.shape != parameter.shape:
            raise ValueError(f"{full_name}: the full tensor {list(full.shape)} gives a TP shard {list(shard.shape)} "
                             f"but the model holds {list(parameter.shape)}; the checkpoint's shape differs")
        parameter.copy_(shard)
