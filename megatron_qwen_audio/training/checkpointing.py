"""Checkpoints of a run: saved by every rank together, reshardable across layouts, published atomically.

Layout of `RUN_DIR/checkpoints/step-N/`:
- `model_optim/`: megatron-core distributed checkpoint (torch_dist backend) of every model chunk's
  `sharded_state_dict()` and the DistributedOptimizer's state in its `fully_reshardable` format. Tensors are stored by
  their global names and offsets, not by rank, so a checkpoint saved at one tensor/pipeline/data-parallel layout
  loads at any other;
- `rng/rank-R.pt`: each rank's random-number state (training/rng_state.py), restored only under the same layout;
- `state.json`: the learning-rate scheduler's state, the loader's position (the same on every rank, stored once) and
  the caller's `extra`;
- `config.yaml`: the run's complete config; `meta.json`: step, layout, seed, format and library versions;
- `complete`: written last; a folder without it was cut off and is never resumed from.

Atomicity: every rank writes into `.tmp-step-N`; only after a barrier (every rank finished) does rank 0 rename it to
`step-N` and write `complete`. A crash at any point leaves either a `.tmp-step-N` or a `step-N` without the marker,
which `latest_complete()` skips with a warning. All ranks must see `RUN_DIR` (a shared filesystem across nodes).

Files are read with `torch.load(weights_only=True)`, JSON/YAML, or through dist_checkpointing, never by unpickling
arbitrary objects.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import torch
import torch.distributed as dist

from megatron_qwen_audio.training.config import TrainConfig, dump_config
from megatron_qwen_audio.training.rng_state import capture_rng_state, reseed_rng, restore_rng_state

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
COMPLETE_MARKER = "complete"
SHARDED_DIR = "model_optim"
RNG_DIR = "rng"
META_FILE = "meta.json"
STATE_FILE = "state.json"
CONFIG_FILE = "config.yaml"
FORMAT_VERSION = 1
# Each parameter's optimizer state stored like the parameter (global shape and offsets), so it reshards across TP,
# PP and DP. Megatron-LM's default, dp_reshardable, reshards only across DP; fully_sharded_model_space no longer saves
# in megatron-core 0.16. Saving all-gathers each data-parallel group's optimizer shards (memory: one full copy of the
# rank's model-parallel share of the optimizer state, briefly).
OPTIMIZER_SHARDING = "fully_reshardable"
_STEP_FOLDER = re.compile(r"^step-(\d+)$")
_PARTIAL_FOLDER = re.compile(r"^\.tmp-step-(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the folder and what to do."""


def checkpoint_folder(path: str | Path) -> Path:
    """`path` as a checkpoint to read: a complete checkpoint folder, or a run directory (its newest complete one).

    This is how `resume: PATH` and `init_from: PATH` are resolved.
    """
    path = Path(path)
    if (path / CHECKPOINTS_DIR).is_dir():
        newest = CheckpointManager(path, keep_last=0).latest_complete()
        if newest is None:
            raise CheckpointError(f"{path} is a run directory without a complete checkpoint; point at a checkpoint "
                                  "folder or another run")
        return newest
    if not (path / META_FILE).is_file() and not (path / SHARDED_DIR).is_dir():
        raise CheckpointError(f"{path} is neither a checkpoint folder (step-N) nor a run directory with "
                              f"{CHECKPOINTS_DIR}/; check the path")
    if not (path / COMPLETE_MARKER).is_file():
        raise CheckpointError(f"{path} is incomplete (no '{COMPLETE_MARKER}' marker: it was cut off while being "
                              "written); use an earlier checkpoint")
    return path


def _layout(model_chunks: Sequence[torch.nn.Module]) -> dict[str, int]:
    """What a rank's RNG state belongs to: same values, same rank places."""
    from megatron.core import parallel_state

    return {
        "world_size": dist.get_world_size(),
        "tensor_parallel": parallel_state.get_tensor_model_parallel_world_size(),
        "pipeline_parallel": parallel_state.get_pipeline_model_parallel_world_size(),
        "model_chunks": len(model_chunks),
    }


def _optimizer_with_state(optimizer):
    """`optimizer`, or None on a rank whose optimizer holds no parameters (a pipeline stage that trains nothing, e.g.
    the decoder-only stages of stage 1 at PP>1): there is no state to store, and megatron-core 0.16's
    `sharded_state_dict()` fails on such an optimizer, so its checkpoint shard holds the model alone."""
    if optimizer is None:
        return None
    parts = getattr(optimizer, "chained_optimizers", [optimizer])
    holds = any(len(group["params"]) > 0 for part in parts for group in part.optimizer.param_groups)
    return optimizer if holds else None


def sharded_state_dict(model_chunks: Sequence[torch.nn.Module], optimizer, is_loading: bool) -> dict:
    """The models' (and the optimizer's, unless None) state as megatron ShardedTensors keyed by global names."""
    from megatron.core.utils import unwrap_model

    metadata = {
        "distrib_optim_sharding_type": OPTIMIZER_SHARDING,
        "singleton_local_shards": False,
        "chained_optim_avoid_prefix": True,
    }
    state = {f"model{index}": unwrap_model(chunk).sharded_state_dict(metadata=metadata)
             for index, chunk in enumerate(model_chunks)}
    if optimizer is not None:
        if is_loading:
            _allocate_optimizer_state(optimizer)
        state["optimizer"] = optimizer.sharded_state_dict(state, is_loading=is_loading, metadata=metadata)
    return state


def _allocate_optimizer_state(optimizer) -> None:
    """Give a never-stepped DistributedOptimizer the state tensors a load fills in.

    It describes its checkpoint layout from the state it holds, and reads the step count from it: a fresh torch Adam
    (no Apex/Transformer Engine, as under the CPU runtime) holds none and its `state_dict()` fails. megatron's own
    placeholder initialisation (one zero-gradient step, overwritten by the load) provides it.
    """
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    for part in getattr(optimizer, "chained_optimizers", [optimizer]):
        if isinstance(part, DistributedOptimizer) and len(part.optimizer.state) == 0:
            part._init_optimizer_states_with_dummy_values()


def _load_optimizer_state(optimizer, state: dict) -> None:
    """`optimizer.load_state_dict(state)`, working around a megatron-core 0.16 bug.

    With torch's Adam (no Apex/Transformer Engine, as under the CPU runtime) the DistributedOptimizer gives every
    parameter's state a "step" entry (from the param groups) and then, copying the loaded parameter state in,
    expects a "step" there too, which the reshardable formats do not store: KeyError 'step'. So the param groups are
    loaded first, and the parameter state with the "step" entries set aside. Those entries are also one shared tensor,
    which torch's Adam would increment once per parameter each step: each parameter gets its own copy back.
    """
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    parts = getattr(optimizer, "chained_optimizers", [optimizer])
    part_states = [state] if len(parts) == 1 else [part_state for _, part_state in sorted(state.items())]
    for part, part_state in zip(parts, part_states):
        if not isinstance(part, DistributedOptimizer):
            raise TypeError(f"checkpoints support megatron's DistributedOptimizer, not {type(part).__name__}; build "
                            "the optimizer with use_distributed_optimizer=True")
        param_state = part_state.pop("param_state")
        assert part_state.pop("param_state_sharding_type") == OPTIMIZER_SHARDING
        part.load_state_dict(part_state)
        steps = {param: entry.pop("step") for param, entry in part.optimizer.state.items() if "step" in entry}
        part.load_parameter_state_from_fully_reshardable(param_state)
        for param, step in steps.items():
            part.optimizer.state[param]["step"] = step.clone()
    if len(parts) > 1:
        optimizer._synchronize_steps()


def _json_text(name: str, data: dict) -> str:
    try:
        return json.dumps(data, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise TypeError(f"checkpoint {name}: {error}; pass only JSON data (numbers, strings, lists, dicts) in "
                        "scheduler_state, loader_state and extra") from None


def _rng_file(folder: Path, rank: int) -> Path:
    return folder / RNG_DIR / f"rank-{rank:05d}.pt"


class CheckpointManager:
    """Saves and finds the checkpoints of the run in `run_dir`, keeping the newest `keep_last` (0: all).

    `save` and `load` are collectives: every rank calls them with its model chunks and the optimizer.
    """

    def __init__(self, run_dir: str | Path, keep_last: int) -> None:
        if keep_last < 0:
            raise ValueError(f"keep_last={keep_last} must be 0 (keep all) or more")
        self.directory = Path(run_dir) / CHECKPOINTS_DIR
        self.keep_last = keep_last

    @classmethod
    def for_run(cls, config: TrainConfig) -> CheckpointManager:
        return cls(config.run_dir, config.keep_last)

    def step_folder(self, step: int) -> Path:
        return self.directory / f"step-{step}"

    def save(
        self,
        step: int,
        model_chunks: Sequence[torch.nn.Module],
        optimizer,
        scheduler_state: dict,
        extra: dict,
        *,
        loader_state: dict | None,
        config: TrainConfig,
    ) -> Path:
        """Write the checkpoint of `step` (after that step's update) and return its folder.

        `optimizer` is megatron's (Distributed)Optimizer; `loader_state` is the loader's `state_dict()`, the same on
        every rank (rank 0's is stored). An older checkpoint of the same step is replaced.
        """
        assert step >= 0, step
        rank = dist.get_rank()
        # serialised on every rank before any collective, so bad data fails everywhere instead of hanging the others
        state_text = _json_text(STATE_FILE, {"scheduler": scheduler_state, "loader": loader_state, "extra": extra})
        meta_text = _json_text(META_FILE, {
            "format": FORMAT_VERSION,
            "step": step,
            "seed": config.seed,
            "layout": _layout(model_chunks),
            "optimizer_sharding": OPTIMIZER_SHARDING,
            "versions": {package: version(package) for package in ("torch", "megatron-core")},
        })
        partial = self.directory / f".tmp-step-{step}"
        if rank == 0:
            shutil.rmtree(partial, ignore_errors=True)
            (partial / SHARDED_DIR).mkdir(parents=True)
            (partial / RNG_DIR).mkdir()
        dist.barrier()

        from megatron.core import dist_checkpointing

        dist_checkpointing.save(sharded_state_dict(model_chunks, _optimizer_with_state(optimizer), is_loading=False),
                                str(partial / SHARDED_DIR))
        torch.save(capture_rng_state(), _rng_file(partial, rank))
        if rank == 0:
            (partial / STATE_FILE).write_text(state_text)
            (partial / META_FILE).write_text(meta_text)
            (partial / CONFIG_FILE).write_text(dump_config(config))
        dist.barrier()  # every rank's files are written

        final = self.step_folder(step)
        if rank == 0:
            self._publish(partial, final)
            self.prune()
        dist.barrier()  # no rank reads or resumes before the folder is complete
        return final

    @staticmethod
    def _publish(partial: Path, final: Path) -> None:
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        with open(final / COMPLETE_MARKER, "w") as marker:
            marker.write("ok\n")
            marker.flush()
            os.fsync(marker.fileno())

    def _scan(self) -> tuple[list[tuple[int, Path]], list[Path]]:
        """(step, folder) of the complete checkpoints, oldest first, and the incomplete folders."""
        complete, incomplete = [], []
        if not self.directory.is_dir():
            return complete, incomplete
        for folder in sorted(self.directory.iterdir()):
            finished, partial = _STEP_FOLDER.match(folder.name), _PARTIAL_FOLDER.match(folder.name)
            if finished and (folder / COMPLETE_MARKER).is_file():
                complete.append((int(finished.group(1)), folder))
            elif finished or partial:
                incomplete.append(folder)
        return sorted(complete), incomplete

    def latest_complete(self) -> Path | None:
        """The newest complete checkpoint, or None; each incomplete folder skipped gets a one-line warning."""
        complete, incomplete = self._scan()
        for folder in incomplete:
            logger.warning("skipping incomplete checkpoint %s (cut off while being written, no '%s' marker); "
                           "delete it once no one needs it", folder, COMPLETE_MARKER)
        return complete[-1][1] if complete else None

    def prune(self) -> None:
        """Delete the complete checkpoints older than the newest `keep_last` (incomplete folders are left alone)."""
        if self.keep_last == 0:
            return
        complete, _ = self._scan()
        for _, folder in complete[:-self.keep_last]:
            shutil.rmtree(folder)

    def checkpoint_to_resume(self, resume: str) -> Path | None:
        """The config's `resume` setting -> the folder to continue from: "auto" the newest complete one here (None
        when there is none yet), "none" None, otherwise the path given (see `checkpoint_folder`)."""
        if resume == "auto":
            return self.latest_complete()
        if resume == "none":
            return None
        return checkpoint_folder(resume)

    @staticmethod
    def load(path: str | Path, model_chunks: Sequence[torch.nn.Module], optimizer) -> dict:
        """Restore the models (and, unless `optimizer` is None, the optimizer and RNG) from a checkpoint folder.

        Returns {"step", "scheduler", "loader", "extra", "rng_restored"}. The models may be laid out differently from
        the saving run (other TP/PP/DP sizes): weights and optimizer state are resharded. The per-rank RNG states
        are restored only when the layout is unchanged; otherwise every rank is reseeded from (run seed + step), so
        dropout is reproducible but differs from the masks the saving layout would have drawn. With `optimizer`
        None only the weights are read (starting a new run from another run's weights) and the RNG is untouched.
        """
        folder = checkpoint_folder(path)
        meta = json.loads((folder / META_FILE).read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"{folder / META_FILE}: format {meta.get('format')!r} is not {FORMAT_VERSION}; "
                                  "convert the checkpoint or use the version that wrote it")
        if optimizer is not None and meta.get("weights_only"):
            raise CheckpointError(f"{folder} holds weights only (written by mqa-convert); start a run from it with "
                                  "init_from, not resume")

        from megatron.core import dist_checkpointing
        from megatron.core.utils import unwrap_model

        stateful_optimizer = _optimizer_with_state(optimizer)
        loaded = dist_checkpointing.load(sharded_state_dict(model_chunks, stateful_optimizer, is_loading=True),
                                         str(folder / SHARDED_DIR))
        for index, chunk in enumerate(model_chunks):
            unwrap_model(chunk).load_state_dict(loaded[f"model{index}"])
        state = json.loads((folder / STATE_FILE).read_text())
        rng_restored = False
        if optimizer is not None:
            if stateful_optimizer is not None:
                _load_optimizer_state(stateful_optimizer, loaded["optimizer"])
            if meta["layout"] == _layout(model_chunks):
                restore_rng_state(torch.load(_rng_file(folder, dist.get_rank()), weights_only=True))
                rng_restored = True
            else:
                reseed_rng(meta["seed"] + meta["step"])
                if dist.get_rank() == 0:
                    logger.info("checkpoint %s was saved at layout %s, resuming at %s: RNG reseeded from seed + step",
                                folder, meta["layout"], _layout(model_chunks))
        return {"step": meta["step"], "scheduler": state["scheduler"], "loader": state["loader"],
                "extra": state["extra"], "rng_restored": rng_restored}
