"""Per-rank program of the reported-loss tests, started by torchrun on CPU: `CONFIG OUT [key=value ...]`.

Before training, each rank reads the batches its first step will take (a fresh loader of its data-parallel rank) and
computes, with a plain forward of the Trainer's model (no pipeline schedule, no loss normalisation), the summed loss
and target tokens of every row of every batch. From them it also computes, by hand, the first step's gradient norm
under the config's loss averaging: the gradient of the per-token (or per-sample) mean over every row of every
data-parallel rank. Rank 0 writes every rank's rows and that norm to OUT as JSON; then every rank runs the Trainer for
its configured steps, which logs the loss and gradient norm it reports to metrics.jsonl.
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
    rows, objective, count = [], torch.zeros(()), 0
    for _ in range(config.parallel.micro_batches_per_step):
        batch = next(batches)
        row_totals = model(**model_inputs(batch, trainer.device)).double().sum(dim=1)
        row_tokens = batch.loss_mask.sum(dim=1).double()
        rows.append(torch.stack([row_totals.detach(), row_tokens], dim=1).tolist())
        if config.loss_averaging == "sample":
            objective = objective + (row_totals / row_tokens).sum()
            count += len(row_tokens)
        else:
            objective = objective + row_totals.sum()
            count += int(row_tokens.sum())
    gradients = torch.autograd.grad(objective, trained)
    flat = torch.cat([gradient.reshape(-1) for gradient in gradients]).double()
    totals = torch.tensor([float(count)], dtype=torch.float64)
    dist.all_reduce(flat)
    dist.all_reduce(totals)
    grad_norm = (flat / totals).norm().item()
    gathered = [None] * layout.world_size
    dist.all_gather_object(gathered, rows)
    if layout.rank == 0:
        with open(out, "w") as file:
            json.dump({"rows": gathered, "grad_norm": grad_norm}, file)
    trainer.train()
    shutdown_parallel()


if __name__ == "__main__":
    main()
