"""`mqa-train CONFIG [key.path=value ...]`: one rank of a training run (the launch scripts start one per process).

The config is loaded and validated for the launcher's world size before any process group starts or megatron is
imported, so a bad config fails in a second with one line (exit 2) instead of after a rendezvous. Errors found while
setting up (data, tokenizer, checkpoints) are one line too (exit 1). A run stopped by a preemption signal saves and
exits 0, so a scheduler that requeues the job resumes it (`resume: auto`).

`mqa-train --plan CONFIG [key.path=value ...] [--world-size N] [--gpu-memory-gb G]` starts nothing: it prints the
memory plan per GPU of the config's layout (training/memory_plan.py) and exits 0 when the worst stage fits, 3 when not.
"""
from __future__ import annotations

import argparse
import os
import sys

from megatron_qwen_audio.runtime.parallel import launch_environment
from megatron_qwen_audio.training.config import ConfigError, load_config, validate

__all__ = ["main"]

EXIT_CONFIG_ERROR = 2
EXIT_SETUP_ERROR = 1
EXIT_PLAN_DOES_NOT_FIT = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mqa-train",
        description="Train a Qwen-Audio style model (one process per rank; start it through launch/pretrain.sh or "
                    "launch/sft.sh, which pick the launcher).",
    )
    parser.add_argument("config", help="run YAML (see configs/); every key is documented in training/config.py")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value",
                        help="override config keys, values read as YAML (e.g. steps=10 parallel.tensor_parallel=2)")
    parser.add_argument("--plan", action="store_true",
                        help="print the memory plan per GPU and exit (starts no process group, builds no model)")
    parser.add_argument("--world-size", type=int, default=None,
                        help="GPUs the plan is for (default: the launcher's WORLD_SIZE, else 1)")
    parser.add_argument("--gpu-memory-gb", type=float, default=80.0, help="memory of one GPU for the plan (GiB)")
    return parser


def _drop_launcher_rank(argv: list[str]) -> list[str]:
    """The DeepSpeed launcher passes `--local_rank=N` first; LOCAL_RANK in the environment says the same."""
    return argv[1:] if argv and argv[0].startswith("--local_rank=") else argv


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(_drop_launcher_rank(sys.argv[1:] if argv is None else argv))
    try:
        world_size = args.world_size if args.plan and args.world_size else launch_environment(os.environ).world_size
        config = load_config(args.config, args.overrides)
        validate(config, world_size, check_data=not args.plan)
    except (ConfigError, ValueError, OSError) as error:
        print(f"mqa-train: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if args.plan:
        from megatron_qwen_audio.training.memory_plan import render_plan

        text, fits = render_plan(config, world_size, args.gpu_memory_gb)
        print(text)
        return 0 if fits else EXIT_PLAN_DOES_NOT_FIT

    from megatron_qwen_audio.runtime.parallel import shutdown_parallel
    from megatron_qwen_audio.training.checkpointing import CheckpointError
    from megatron_qwen_audio.training.trainer import Trainer

    try:
        trainer = Trainer(config)
    except (ConfigError, CheckpointError, ValueError, OSError) as error:
        print(f"mqa-train: {error}", file=sys.stderr)
        return EXIT_SETUP_ERROR
    trainer.train()
    shutdown_parallel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
