"""The audio encoder across a tensor-parallel group: each rank encodes a share of the clips, all ranks get all rows.

The encoder is replicated over the TP group (its weights are small and not split), but its work is not: with the
micro-batch's clips in order, TP rank r encodes the r-th contiguous share (`clip_share`; with fewer clips than ranks
some ranks encode none), then `gather_encoded_rows` all-gathers the encoded span rows so that every TP rank can write
all spans into its (replicated) decoder input. Every rank holds the whole micro-batch, so each one knows every share's
row count from the clip lengths (`audio_span_length`) and no lengths are exchanged; the all-gather pads each share to
the longest one, since gloo's all-gather needs equal sizes.

Gradients. In megatron's tensor parallelism an activation replicated over the TP group (the decoder input) receives
the complete gradient on every TP rank: the column-parallel layers that read it all-reduce their input gradient. So
the gradient of the gathered rows is the same full tensor on each rank, and the backward of the all-gather is the
slice of the rows this rank computed (a reduce-scatter would count it tp times). The encoder's parameter gradients
then hold only the contributions of the rank's own clips; `allreduce_encoder_grads` sums them over the TP group,
which makes every rank's encoder gradient the gradient of the whole micro-batch and keeps the replicas identical.
`finalize_model_grads` below is megatron's, followed by that sum: set it as the config's `finalize_model_grads_func`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.distributed import finalize_model_grads as megatron_finalize_model_grads
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from megatron_qwen_audio.model.audio_encoder import AudioEncoder


def clip_share(num_clips: int, tp_rank: int, tp_size: int) -> range:
    """The clips TP rank `tp_rank` encodes: a contiguous block, block sizes differing by at most one."""
    base, extra = divmod(num_clips, tp_size)
    start = tp_rank * base + min(tp_rank, extra)
    return range(start, start + base + (tp_rank < extra))


class _GatherRows(torch.autograd.Function):
    """All-gather of variable-length row blocks; backward: this rank's rows of the (already complete) gradient."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, row_counts: list[int], group: dist.ProcessGroup) -> torch.Tensor:
        rank = dist.get_rank(group)
        ctx.start = sum(row_counts[:rank])
        ctx.count = row_counts[rank]
        longest = max(row_counts)
        padded = rows.new_zeros(longest, rows.shape[1])
        padded[: rows.shape[0]] = rows
        gathered = [torch.empty_like(padded) for _ in row_counts]
        dist.all_gather(gathered, padded, group=group)
        return torch.cat([block[:count] for block, count in zip(gathered, row_counts)])

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output[ctx.start: ctx.start + ctx.count], None, None


def gather_encoded_rows(rows: torch.Tensor, row_counts: list[int], group: dist.ProcessGroup) -> torch.Tensor:
    """Concatenate every TP rank's encoded rows in rank order; rank r contributes `row_counts[r]` rows (`rows`)."""
    assert rows.shape[0] == row_counts[dist.get_rank(group)], "this rank's rows disagree with its row count"
    if len(row_counts) == 1:
        return rows
    return _GatherRows.apply(rows, row_counts, group)


def _grad_of(parameter: nn.Parameter) -> torch.Tensor | None:
    """megatron DDP accumulates into `main_grad`; without DDP the gradient is `.grad`."""
    return parameter.main_grad if hasattr(parameter, "main_grad") else parameter.grad


def allreduce_encoder_grads(model: nn.Module, tp_group: dist.ProcessGroup | None = None) -> None:
    """Sum the audio encoder's gradients over the TP group (see the module docstring). Call once per step, after
    the backward of every micro-batch (and after megatron's data-parallel reduction, which it commutes with).

    A no-op where the model part holds no trainable encoder (later pipeline stages, a frozen encoder) or TP is 1;
    the TP ranks of one stage hold the same modules and freeze masks, so they all call it or all skip it.
    """
    tp_group = parallel_state.get_tensor_model_parallel_group() if tp_group is None else tp_group
    if dist.get_world_size(tp_group) == 1:
        return
    grads = [_grad_of(parameter) for module in model.modules() if isinstance(module, AudioEncoder)
             for parameter in module.parameters() if parameter.requires_grad]
    grads = [grad for grad in grads if grad is not None]
    if not grads:
        return
    summed = _flatten_dense_tensors(grads)
    dist.all_reduce(summed, group=tp_group)
    for grad, total in zip(grads, _unflatten_dense_tensors(summed, grads)):
        grad.copy_(total)


def finalize_model_grads(model: Sequence[nn.Module], num_tokens: torch.Tensor | None = None,
                         pg_collection=None, force_all_reduce: bool | None = False) -> None:
    """megatron's `finalize_model_grads` (data-parallel reduction, token scaling), then the encoder's TP sum."""
    megatron_finalize_model_grads(model, num_tokens, pg_collection=pg_collection, force_all_reduce=force_all_reduce)
    tp_group = None if pg_collection is None else pg_collection.tp
    for chunk in model:
        allreduce_encoder_grads(chunk, tp_group)
