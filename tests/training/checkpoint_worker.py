"""Per-rank program of the checkpoint tests, started by torchrun on CPU (tests/runtime and tests/data on PYTHONPATH).

It trains the runtime tests' Qwen-shaped GPTModel (megatron DDP + DistributedOptimizer, a fixed global batch) and
checkpoints it with `CheckpointManager`. Phases, one per launch:
- `save` (2 processes, TP=2): run "reshard": steps 1-3, saving after each (keep_last=2), then step 4, recorded as the
  uninterrupted run; run "dropout" (dropout on): step 1, save, step 2 recorded. Also saves a loader position and
  records the batch that comes next.
- `resume-single` (1 process, TP=1): resume "auto" from run "reshard", step 4 recorded; the loader restored from the
  checkpoint takes its next batch; a weights-only load.
- `resume-pairs` (2 processes): PP=2 resume of "reshard", step 4 recorded; TP=2 resume of "dropout" (RNG restored),
  step 2 recorded, and the same after reseeding; then the preemption check: rank 1 gets SIGUSR1 at step 3, rank 0
  SIGTERM at step 5.
Each rank saves what it observed to `OUT/PHASE-rankR.pt` (tensors and plain values only).
"""
import argparse
import logging
import os
import signal
from pathlib import Path

import torch
import torch.distributed as dist
from layout_equivalence_worker import (
    ADAM_EPS,
    CLIP_GRAD,
    LEARNING_RATE,
    NUM_LAYERS,
    SEED,
    build_model,
    run_schedule,
    wrap_ddp,
)
from synthetic_shard_sets import write_shard_set

from megatron_qwen_audio.audio import SpecAugmentConfig
from megatron_qwen_audio.data.loader import AudioTextLoader
from megatron_qwen_audio.data.loader_config import LoaderConfig
from megatron_qwen_audio.data.shard_sets import ShardSetSpec
from megatron_qwen_audio.model.parameter_shards import full_parameter_name
from megatron_qwen_audio.runtime.parallel import ParallelLayout, initialize_parallel, shutdown_parallel
from megatron_qwen_audio.training.checkpointing import CheckpointManager
from megatron_qwen_audio.training.config import TrainConfig
from megatron_qwen_audio.training.preemption import PreemptionFlag
from megatron_qwen_audio.training.rng_state import reseed_rng

DROPOUT = 0.2
KEEP_LAST = 2
LOADER_BATCHES_BEFORE_SAVE = 2
SHARDS = [9, 7, 8]
PREEMPTION_STEPS = {1: (3, signal.SIGUSR1), 0: (5, signal.SIGTERM)}  # rank -> (step, signal it gets)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", required=True, choices=("save", "resume-single", "resume-pairs"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    warnings = _collect_warnings()
    result = {"save": save_phase, "resume-single": resume_single_phase, "resume-pairs": resume_pairs_phase}[args.phase](
        args.out)
    result["warnings"] = warnings
    torch.save(result, args.out / f"{args.phase}-rank{dist.get_rank()}.pt")
    shutdown_parallel()


def _collect_warnings() -> list[str]:
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("megatron_qwen_audio").addHandler(handler)
    return messages


class Trainer:
    """One layout's model, DDP wrapper and distributed optimizer, stepping on the runtime tests' fixed batch."""

    def __init__(self, layout: ParallelLayout, dropout: float = 0.0) -> None:
        from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

        self.layout = layout
        self.model = build_model(layout, initial=None)
        if dropout:
            _enable_dropout(self.model, dropout)
        self.ddp_model = wrap_ddp(self.model, use_distributed_optimizer=True)
        self.optimizer = get_megatron_optimizer(
            OptimizerConfig(optimizer="adam", lr=LEARNING_RATE, weight_decay=0.0, adam_eps=ADAM_EPS,
                            clip_grad=CLIP_GRAD, use_distributed_optimizer=True, params_dtype=torch.float32),
            [self.ddp_model],
        )

    def step(self) -> dict:
        """One update; the loss (last stage only) and this rank's parameters after it, by global name."""
        self.optimizer.zero_grad()
        observed = run_schedule(self.layout, self.ddp_model)
        update_successful, _, _ = self.optimizer.step()
        assert update_successful
        loss = observed["loss_report"][0] / observed["loss_report"][1] if "loss_report" in observed else None
        return {"loss": loss, "params": self.params()}

    def params(self) -> dict[str, torch.Tensor]:
        layers_per_stage = NUM_LAYERS // self.layout.pipeline_parallel
        return {full_parameter_name(name, self.layout.pipeline_parallel_rank * layers_per_stage): param.detach().clone()
                for name, param in self.model.named_parameters()}

    def save(self, manager: CheckpointManager, step: int, loader_state: dict | None = None) -> None:
        manager.save(step, [self.ddp_model], self.optimizer, scheduler_state={"scheduler_step": step},
                     extra={"consumed_samples": 4 * step}, loader_state=loader_state,
                     config=TrainConfig(run_dir=str(manager.directory.parent), seed=SEED))

    def load(self, path: Path) -> dict:
        return CheckpointManager.load(path, [self.ddp_model], self.optimizer)


def _enable_dropout(model: torch.nn.Module, probability: float) -> None:
    """build_model() builds without dropout; switch on the embedding, attention and hidden (bias-dropout-add) ones."""
    from megatron.core.transformer.transformer_layer import TransformerLayer

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = probability
        if isinstance(module, TransformerLayer):
            module.hidden_dropout = probability


def _layout_record(layout: ParallelLayout) -> dict:
    return {"tensor_parallel_rank": layout.tensor_parallel_rank, "tensor_parallel": layout.tensor_parallel,
            "pipeline_parallel_rank": layout.pipeline_parallel_rank, "is_last_stage": layout.is_last_stage}


def _loader(out: Path) -> AudioTextLoader:
    config = LoaderConfig(seed=3, workers=0, max_batch_tokens=1200, max_batch_frames=2400, max_batch_samples=4,
                          shuffle_buffer=8, batching_pool=8, spec_augment=SpecAugmentConfig(enabled=False))
    return AudioTextLoader([ShardSetSpec(str(out / "shards"), weight=1.0)], config, dp_rank=0, dp_size=1)


def save_phase(out: Path) -> dict:
    layout = initialize_parallel(2, 1, device="cpu", seed=SEED)
    if layout.rank == 0:
        write_shard_set(out / "shards", SHARDS, seed=5)
    dist.barrier()
    loader = _loader(out)
    batches = iter(loader)
    taken = [next(batches).keys for _ in range(LOADER_BATCHES_BEFORE_SAVE)]
    loader_state = loader.state_dict()
    result = {"layout": _layout_record(layout), "loader_state": loader_state, "loader_first_keys": taken[0],
              "loader_next_keys": next(batches).keys}

    trainer, manager = Trainer(layout), CheckpointManager(out / "reshard", keep_last=KEEP_LAST)
    for step in (1, 2, 3):
        trainer.step()
        trainer.save(manager, step, loader_state)
    result["saved_params"] = trainer.params()
    result["continued"] = trainer.step()

    result["kept_after_save"] = sorted(path.name for path in manager.directory.iterdir())

    trainer = Trainer(layout, dropout=DROPOUT)
    trainer.step()
    trainer.save(CheckpointManager(out / "dropout", keep_last=0), 1)
    result["dropout_continued"] = trainer.step()
    return result


def resume_single_phase(out: Path) -> dict:
    layout = initialize_parallel(1, 1, device="cpu", seed=SEED + 1)
    trainer, manager = Trainer(layout), CheckpointManager(out / "reshard", keep_last=KEEP_LAST)
    path = manager.checkpoint_to_resume("auto")
    resumed = trainer.load(path)
    loader = _loader(out)
    loader.load_state_dict(resumed["loader"])
    weights_only = Trainer(layout)
    CheckpointManager.load(path, [weights_only.ddp_model], optimizer=None)
    return {"layout": _layout_record(layout), "resumed_from": path.name, "resumed": resumed,
            "loader_next_keys": next(iter(loader)).keys, "weights_only_params": weights_only.params(),
            "continued": trainer.step()}


def resume_pairs_phase(out: Path) -> dict:
    from megatron.core import parallel_state

    layout = initialize_parallel(1, 2, device="cpu", seed=SEED + 1)
    trainer = Trainer(layout)
    trainer.load(CheckpointManager(out / "reshard", keep_last=KEEP_LAST).checkpoint_to_resume("auto"))
    result = {"pipeline_layout": _layout_record(layout), "pipeline_continued": trainer.step()}
    parallel_state.destroy_model_parallel()

    layout = initialize_parallel(2, 1, device="cpu", seed=SEED + 1)  # the RNG must come from the checkpoint
    dropout_checkpoint = CheckpointManager(out / "dropout", keep_last=0).checkpoint_to_resume("auto")
    trainer = Trainer(layout, dropout=DROPOUT)
    result["dropout_resumed"] = trainer.load(dropout_checkpoint)
    result["dropout_continued"] = trainer.step()
    trainer = Trainer(layout, dropout=DROPOUT)
    trainer.load(dropout_checkpoint)
    reseed_rng(SEED + 1)
    result["dropout_reseeded"] = trainer.step()
    result["tensor_layout"] = _layout_record(layout)
    result["preemption"] = preemption_run(layout.rank)
    return result


def preemption_run(rank: int) -> dict:
    """Steps until the ranks agree to stop; this rank signals itself at its step of PREEMPTION_STEPS."""
    signal_step, signum = PREEMPTION_STEPS[rank]
    with PreemptionFlag() as flag:
        for step in range(1, 10):
            if step == signal_step:
                os.kill(os.getpid(), signum)
            if flag.should_save_and_exit():
                received = flag.received
                return {"stopped_at": step, "received": received.name if received else None}
    return {"stopped_at": None, "received": None}


if __name__ == "__main__":
    main()
