"""Full (TP=1, PP=1) GPTModel tensors -> the shard one rank holds, for megatron-core's local layer spec.

The equivalence tests load every layout from one set of full weights and compare each rank's gradients and stepped
parameters with the matching slice of the single-process run, so this mapping is shared by the worker (to load) and
the test (to compare). A wrong mapping changes the model's function and shows up as gradient mismatches.
"""
import re

import torch

# Column-parallel weights are split along their output rows (dim 0), row-parallel ones along their input columns.
_COLUMN_PARALLEL = (
    "embedding.word_embeddings.weight",
    "self_attention.linear_qkv.weight",
    "self_attention.linear_qkv.bias",
    "mlp.linear_fc1.weight",
    "output_layer.weight",
)
_ROW_PARALLEL = ("self_attention.linear_proj.weight", "mlp.linear_fc2.weight")
_LAYER_INDEX = re.compile(r"^decoder\.layers\.(\d+)\.")


def global_name(local_name: str, pipeline_rank: int, layers_per_stage: int) -> str:
    """Stage-local layer numbering ("decoder.layers.0." on every stage) -> the full model's layer numbering."""
    match = _LAYER_INDEX.match(local_name)
    if match is None:
        return local_name
    layer = int(match.group(1)) + pipeline_rank * layers_per_stage
    return f"decoder.layers.{layer}." + local_name[match.end():]


def tensor_parallel_shard(full: torch.Tensor, name: str, tp_rank: int, tp_size: int) -> torch.Tensor:
    """The part of `full` that tensor-parallel rank `tp_rank` holds (replicated tensors are returned whole).

    The SwiGLU fc1 weight is [gate; up] stacked: each rank holds its rows of gate followed by its rows of up, not a
    contiguous block of the stacked matrix.
    """
    if name.endswith("mlp.linear_fc1.weight"):
        gate, up = full.chunk(2, dim=0)
        return torch.cat([gate.chunk(tp_size, dim=0)[tp_rank], up.chunk(tp_size, dim=0)[tp_rank]], dim=0)
    if name.endswith(_COLUMN_PARALLEL):
        return full.chunk(tp_size, dim=0)[tp_rank]
    if name.endswith(_ROW_PARALLEL):
        return full.chunk(tp_size, dim=1)[tp_rank]
    return full
