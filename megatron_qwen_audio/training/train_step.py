"""One optimizer step, and one held-out evaluation, through megatron's pipeline schedule.

Loss normalisation. The decoder config sets `calculate_per_token_loss`, so the loss function hands the schedule the
*sum* of the masked per-token losses of a micro-batch and its number of target tokens; the schedule adds the token
counts of its micro-batches and `finalize_model_grads` divides the gradients by the target tokens of the whole global
batch (all micro-batches of all data-parallel ranks). The reported loss follows the same rule: the loss sums and token
counts are added over micro-batches, then over the data-parallel ranks, and divided once. The result is the mean loss
per target token of the global batch, not a mean of per-batch means (which would weigh a short batch's tokens more).

Sample averaging (`loss_averaging: sample`) swaps the unit: each sample contributes the mean loss of its own target
tokens, and the count is the samples (with targets) of the global batch, so the objective is the mean over samples of
per-sample means. A one-token target (language identification) then weighs as much as a 40-token transcript instead
of 1/40 of it. Held-out evaluation always reports the loss per target token, whichever unit training uses.

Every rank of a data-parallel replica (all its tensor- and pipeline-parallel ranks) reads the same batches; each
pipeline stage takes what it needs from them (see QwenAudioModel.forward).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.distributed as dist
from torch import nn

from megatron_qwen_audio.data.collate import AudioTextBatch
from megatron_qwen_audio.training.config import LossAveraging

__all__ = ["LossSum", "StepResult", "evaluate", "model_inputs", "train_step"]

LOSS_REPORT_KEY = "lm loss"
SAMPLE_REPORT_KEY = "sample loss"


@dataclass(frozen=True)
class LossSum:
    """Summed loss and what it is averaged over: target tokens, or samples for a training loss with sample averaging
    (module doc). Zero on ranks other than the last pipeline stage."""

    total: float
    tokens: int  # the count the mean divides by (target tokens, or samples with sample averaging)

    @property
    def mean(self) -> float:
        """Loss per target token, or per sample (NaN when there was none)."""
        return self.total / self.tokens if self.tokens else float("nan")

    def __add__(self, other: LossSum) -> LossSum:
        return LossSum(self.total + other.total, self.tokens + other.tokens)


@dataclass(frozen=True)
class StepResult:
    """What one optimizer step did, over the whole global batch (valid on the last pipeline stage)."""

    loss: LossSum
    grad_norm: float
    # this data-parallel rank's micro-batches, each float64 [2, samples]: per sample the summed loss and its target
    # tokens (per-task losses group samples by task); empty on ranks other than the last pipeline stage
    sample_losses: list[torch.Tensor]


def model_inputs(batch: AudioTextBatch, device: torch.device) -> dict[str, torch.Tensor]:
    """The `QwenAudioModel.forward` keyword arguments of a loader batch, on `device` (mel lengths and sample
    boundaries stay on the CPU, where the encoder and the packing checks read them)."""
    inputs = {
        "tokens": batch.tokens.to(device),
        "labels": batch.labels.to(device),
        "loss_mask": batch.loss_mask.to(device),
        "mel": batch.mel.to(device),
        "mel_lengths": batch.mel_lengths,
        "audio_spans": batch.audio_spans,
    }
    if batch.cu_seqlens is not None:
        inputs["cu_seqlens"] = batch.cu_seqlens
    return inputs


def _per_sample_sums(values: torch.Tensor, cu_seqlens: torch.Tensor | None) -> torch.Tensor:
    """[B, L] -> [samples]: the sum of each sample's positions (a row's when unpacked, a `cu_seqlens` segment of the
    packed row otherwise). Differentiable: sample averaging back-propagates through it."""
    if cu_seqlens is None:
        return values.sum(dim=1)
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).to(device=values.device, dtype=torch.long)
    sample_of_position = torch.repeat_interleave(torch.arange(len(lengths), device=values.device), lengths,
                                                 output_size=values.shape[1])
    return values.new_zeros(len(lengths)).index_add(0, sample_of_position, values.reshape(-1))


def _forward_step(loss_averaging: LossAveraging, data_iterator, model: nn.Module):
    inputs = next(data_iterator)
    return model(**inputs), partial(_summed_loss, loss_averaging, inputs["loss_mask"], inputs.get("cu_seqlens"))


def _summed_loss(loss_averaging: LossAveraging, loss_mask: torch.Tensor, cu_seqlens: torch.Tensor | None,
                 masked_losses: torch.Tensor):
    """(summed loss, count, report) for the per-token-loss schedule, which divides by the count of the global batch:
    the masked per-token losses and the target tokens, or with sample averaging each sample's mean loss and the
    samples with targets (module doc). The report also holds each sample's loss sum and target tokens."""
    sample_totals = _per_sample_sums(masked_losses, cu_seqlens)
    sample_tokens = _per_sample_sums(loss_mask, cu_seqlens)
    if loss_averaging == "sample":
        has_targets = sample_tokens > 0
        total = (sample_totals[has_targets] / sample_tokens[has_targets]).sum()
        count = has_targets.sum().to(torch.int)
    else:
        total = sample_totals.sum()
        count = sample_tokens.sum().to(torch.int)
    samples = torch.stack([sample_totals.detach(), sample_tokens.detach()]).double()
    return total, count, {LOSS_REPORT_KEY: torch.stack([total.detach().clone(), count.detach().float()]),
                          SAMPLE_REPORT_KEY: samples}


def _run_schedule(model_chunks: Sequence[nn.Module], micro_batches: Sequence[dict], forward_only: bool,
                  loss_averaging: LossAveraging = "token") -> tuple[LossSum, list[torch.Tensor]]:
    """Run the micro-batches through this rank's pipeline stage; the loss of this data-parallel rank's share and
    the per-sample (loss sum, target tokens) of each micro-batch (see StepResult.sample_losses)."""
    from megatron.core.pipeline_parallel import get_forward_backward_func

    reports = get_forward_backward_func()(
        forward_step_func=partial(_forward_step, loss_averaging),
        data_iterator=iter(micro_batches),
        model=list(model_chunks),
        num_microbatches=len(micro_batches),
        seq_length=max(inputs["tokens"].shape[1] for inputs in micro_batches),  # shapes travel with each message
        micro_batch_size=micro_batches[0]["tokens"].shape[0],
        forward_only=forward_only,
    )
    if not reports:  # not the last pipeline stage
        return LossSum(0.0, 0), []
    total, tokens = torch.stack([report[LOSS_REPORT_KEY] for report in reports]).double().sum(dim=0).tolist()
    return LossSum(total, round(tokens)), [report[SAMPLE_REPORT_KEY].cpu() for report in reports]


def _sum_over_data_parallel(loss: LossSum) -> LossSum:
    """Add the loss sums and token counts of all data-parallel ranks (a collective of every rank's DP group)."""
    from megatron.core import parallel_state

    group = parallel_state.get_data_parallel_group()
    device = "cuda" if dist.get_backend(group) == dist.Backend.NCCL else "cpu"
    summed = torch.tensor([loss.total, float(loss.tokens)], dtype=torch.float64, device=device)
    dist.all_reduce(summed, group=group)
    total, tokens = summed.tolist()
    return LossSum(total, round(tokens))


def train_step(model_chunks: Sequence[nn.Module], optimizer, micro_batches: Sequence[dict],
               loss_averaging: LossAveraging = "token") -> StepResult:
    """Forward and backward `micro_batches` (this data-parallel rank's share of the global batch, as model_inputs),
    then one clipped optimizer update; `loss_averaging` is the unit of the mean (module doc). The caller advances
    the learning-rate schedule."""
    for chunk in model_chunks:
        chunk.zero_grad_buffer()
    optimizer.zero_grad()
    local, sample_losses = _run_schedule(model_chunks, micro_batches, forward_only=False,
                                         loss_averaging=loss_averaging)
    _, grad_norm, _ = optimizer.step()
    return StepResult(loss=_sum_over_data_parallel(local), grad_norm=float(grad_norm or 0.0),
                      sample_losses=sample_losses)


def evaluate(model_chunks: Sequence[nn.Module], micro_batches: Sequence[dict]) -> LossSum:
    """Held-out loss per target token over `micro_batches` of every data-parallel rank (forward only, no dropout)."""
    for chunk in model_chunks:
        chunk.eval()
    try:
        with torch.no_grad():
            local, _ = _run_schedule(model_chunks, micro_batches, forward_only=True)
    finally:
        for chunk in model_chunks:
            chunk.train()
    return _sum_over_data_parallel(local)
