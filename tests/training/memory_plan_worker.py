"""Per-rank program of the memory-plan test, started by torchrun on CPU: `CONFIG OUT [key=value ...]`.

Builds the Trainer (model stage, freeze masks, DDP, distributed optimizer: the run's own builders) and writes, from
every rank, what it actually allocated: parameter names and elements with their trainable flag, the DDP gradient
buffers (the parameters they hold, and their size with megatron's alignment padding), and the elements of this rank's
optimizer shard. Rank 0 writes all ranks' records to OUT.
"""
import json
import sys

import torch.distributed as dist

from megatron_qwen_audio.runtime.parallel import shutdown_parallel
from megatron_qwen_audio.training.config import load_config
from megatron_qwen_audio.training.trainer import Trainer


def main() -> None:
    config_path, out, *overrides = sys.argv[1:]
    trainer = Trainer(load_config(config_path, overrides))
    layout, chunk = trainer.layout, trainer.model_chunks[0]
    record = {
        "pipeline_rank": layout.pipeline_parallel_rank,
        "tensor_rank": layout.tensor_parallel_rank,
        "data_rank": layout.data_parallel_rank,
        "parameters": [[name, parameter.numel(), parameter.requires_grad]
                       for name, parameter in chunk.module.named_parameters()],
        "gradient_buffer_parameter_elements": sum(parameter.numel() for buffer in chunk.buffers
                                                  for parameter in buffer.params),
        "gradient_buffer_elements": sum(buffer.grad_data.numel() for buffer in chunk.buffers),  # padding included
        "gradient_buffer_tensors": sum(len(buffer.params) for buffer in chunk.buffers),
        "gradient_buckets": sum(len(buffer.buckets) for buffer in chunk.buffers),
        "optimizer_shard_elements": sum(parameter.numel() for group in trainer.optimizer.optimizer.param_groups
                                        for parameter in group["params"]),
    }
    gathered = [None] * layout.world_size
    dist.all_gather_object(gathered, record)
    if layout.rank == 0:
        with open(out, "w") as file:
            json.dump(gathered, file)
    trainer.metrics.close()
    shutdown_parallel()


if __name__ == "__main__":
    main()
