"""Starting ranks from a test: an environment free of the launcher variables of whatever started pytest, and
torchrun with a bounded wait that fails the test with the ranks' output.

Multi-process tests launch fresh ranks; a RANK or MASTER_PORT inherited from an outer launcher (or a SLURM job
running the suite) would make them join the wrong group, and a rank left with every core's threads makes 4 ranks on
2 cores crawl (engine_facts: 1 s -> 0.03 s per step with OMP_NUM_THREADS=1).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID")


def clean_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) without launcher variables, one OpenMP thread per rank."""
    environment = {name: value for name, value in (os.environ if base is None else base).items()
                   if name not in LAUNCHER_VARIABLES}
    environment["OMP_NUM_THREADS"] = "1"
    return environment


def training_environment(tokenizer_file: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """clean_environment() for runs of `mqa-train`: the tokenizer the shards were built with, wandb off, and this
    interpreter's console scripts first on PATH."""
    environment = clean_environment(base)
    environment.update(MQA_TOKENIZER_FILE=str(tokenizer_file), WANDB_MODE="disabled",
                       PATH=os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")]))
    return environment


def torchrun(processes: int, worker_arguments: list[str], description: str, timeout_s: float,
             environment: dict[str, str] | None = None) -> None:
    """`torchrun --standalone` (it picks a free port) of `processes` ranks; the test fails if any rank fails."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               *worker_arguments]
    started = time.monotonic()
    finished = subprocess.run(command, env=clean_environment() if environment is None else environment, check=False,
                              capture_output=True, text=True, timeout=timeout_s)
    print(f"torchrun x{processes} {description}: {time.monotonic() - started:.1f} s")
    if finished.returncode != 0:
        pytest.fail(f"torchrun x{processes} {description} failed:\n{finished.stdout[-3000:]}\n"
                    f"{finished.stderr[-6000:]}")


def run_benchmark(script: Path, arguments: list[str], out: Path, timeout_s: float) -> dict:
    """Run a benchmark script as a user does (a fresh process from the repository root) with `--out out`; its
    figures, or a test failure with its output."""
    finished = subprocess.run([sys.executable, str(script), *arguments, "--out", str(out)], env=clean_environment(),
                              cwd=script.parents[1], capture_output=True, text=True, timeout=timeout_s, check=False)
    if finished.returncode != 0:
        pytest.fail(f"{script.name} failed:\n{finished.stdout[-3000:]}\n{finished.stderr[-6000:]}")
    print(finished.stdout)
    return json.loads(out.read_text())
