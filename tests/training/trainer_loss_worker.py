"""Per-rank program of the reported-loss test, started by torchrun on CPU: `CONFIG OUT [key=value ...]`.

Before training, each rank reads the batches its first step will take (a fresh loader of its data-parallel rank) and
computes, with a plain forward of the Trainer's model (no pipeline schedule, no loss normalisation), the sum of each
batch's masked per-token losses and its target tokens. Rank 0 writes every rank's (sum, tokens) pairs to OUT as
JSON; then every rank runs the Trainer for its configured steps, which logs the loss it reports to metrics.jsonl.
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
    pairs = []
    with torch.no_grad():
        for _ in range(config.parallel.micro_batches_per_step):
            batch = next(batches)
            losses = model(**model_inputs(batch, trainer.device))
            pairs.append([losses.double().sum().item(), batch.num_target_tokens])
    gathered = [None] * layout.world_size
    dist.all_gather_object(gathered, pairs)
    if layout.rank == 0:
        with open(out, "w") as file:
            json.dump(gathered, file)
    trainer.train()
    shutdown_parallel()


if __name__ == "__main__":
    main()
