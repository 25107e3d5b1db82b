"""Per-rank program of the reported-loss tests, started by torchrun on CPU: `CONFIG OUT [key=value ...]`.

Before training, each rank reads the batches its first step will take (a fresh loader of its data-parallel rank) and
computes, with a plain forward of the Trainer's model (no pipeline schedule, no loss normalisation), the summed loss
and target tokens of every sample of every batch (a row, or a `cu_seqlens` slice of a packed row). From them it also
computes, by hand, the first step's gradient norm under the config's loss averaging: the gradient of the per-token (or
per-sample) mean over every sample of every data-parallel rank. Rank 0 writes every rank's samples, the samples per
row of each batch and that norm to OUT as JSON; then every rank runs the Trainer for its configured steps, which logs
the loss and gradient norm it reports to metrics.jsonl.
"""
import json
import sys

import torch
import torch.distributed as dist

from megatron_qwen_audio.data.loader import AudioTextLoader
from megatron_qwen_audio.runtime.parallel import shutdown_parallel
from megatron_qwen_audio.training.config import load_config
from megatron_qwen_audio.training.train_step import model_inputs
from megatron_qwen_audio.training.trainer import Trainer


def main() -> None:
    config_path, out, *overrides = sys.argv[1:]
    config = load_config(config_path, overrides)
    trainer = Trainer(config)
    layout = trainer.layout
    assert (layout.tensor_parallel, layout.pipeline_parallel) == (1, 1), "the plain forward needs the whole model"
    loader = AudioTextLoader(config.data.train, config.data.loader, layout.data_parallel_rank, layout.data_parallel)
    batches = iter(loader)
    model = trainer.model_chunks[0].module
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    samples, samples_per_row, objective, count = [], [], torch.zeros(()), 0
    for _ in range(config.parallel.micro_batches_per_step):
        batch = next(batches)
        losses = model(**model_inputs(batch, trainer.device)).double()
        slices = sample_slices(batch)
        sample_totals = torch.stack([losses[row, start:end].sum() for row, start, end in slices])
        sample_tokens = torch.stack([batch.loss_mask[row, start:end].sum() for row, start, end in slices]).double()
        samples.append(torch.stack([sample_totals.detach(), sample_tokens], dim=1).tolist())
        samples_per_row.append(batch.num_samples / batch.tokens.shape[0])
        if config.loss_averaging == "sample":
            objective = objective + (sample_totals / sample_tokens).sum()
            count += len(sample_tokens)
        else:
            objective = objective + sample_totals.sum()
            count += int(sample_tokens.sum())
    gradients = torch.autograd.grad(objective, trained)
    flat = torch.cat([gradient.reshape(-1) for gradient in gradients]).double()
    totals = torch.tensor([float(count)], dtype=torch.float64)
    dist.all_reduce(flat)
    dist.all_reduce(totals)
    grad_norm = (flat / totals).norm().item()
    gathered = [None] * layout.world_size
    dist.all_gather_object(gathered, samples)
    if layout.rank == 0:
        with open(out, "w") as file:
            json.dump({"samples": gathered, "grad_norm": grad_norm, "samples_per_row": samples_per_row}, file)
    trainer.train()
    shutdown_parallel()


def sample_slices(batch) -> list[tuple[int, int, int]]:
    """(row, start, end) of each sample: whole rows, or the cu_seqlens segments of a packed row."""
    if batch.cu_seqlens is None:
        return [(row, 0, batch.tokens.shape[1]) for row in range(batch.tokens.shape[0])]
    bounds = batch.cu_seqlens.tolist()
    return [(0, start, end) for start, end in zip(bounds, bounds[1:])]


if __name__ == "__main__":
    main()
