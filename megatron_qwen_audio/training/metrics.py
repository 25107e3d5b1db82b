"""Training metrics: one JSON line per logged step in `run_dir/metrics.jsonl`, and the same values in wandb.

Only one process logs: the one that sees the loss (last pipeline stage) and stands for its tensor- and data-parallel
peers (rank 0 of both); the caller decides and passes `is_logging_rank`, every other rank's logger does nothing.
The local file is written in every wandb mode, so a run leaves its numbers without a network or an account.

Lines. A training line has "loss" and "task_loss"; a held-out evaluation is a line of its own, {"step", "heldout_loss"}
(wandb: `heldout_loss` at the same step), so readers tell the two apart by their keys. `task_loss` is the mean loss
per target token of each task's rows and `task_tokens` their target tokens: the task losses weighted by their tokens
average to `loss`.

A run directory is one wandb run: the first logger draws a run id and stores it in `run_dir/wandb_run_id`; a resumed
run (a new process in the same run directory) reads it and continues that run (`resume="allow"`), and its lines
append to the same metrics.jsonl.

Throughput: the caller counts what the whole job did over the interval (tokens and audio seconds over all
data-parallel ranks, useful model FLOPs over all ranks, see training/model_flops.py); the logger divides by the
interval's wall time, and FLOPs also by the devices, so TFLOP/s is per device, comparable with a device's peak.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from megatron_qwen_audio.training.config import WandbConfig

__all__ = ["METRICS_FILE", "WANDB_RUN_ID_FILE", "IntervalMetrics", "MetricsLogger"]

METRICS_FILE = "metrics.jsonl"
WANDB_RUN_ID_FILE = "wandb_run_id"


@dataclass(frozen=True)
class IntervalMetrics:
    """What happened since the previous log line, summed over the whole job."""

    step: int  # optimizer steps completed
    loss: float  # mean loss per target token over the interval
    task_losses: dict[str, float] = field(default_factory=dict)  # the same, per task tag (e.g. "asr", "aac")
    task_tokens: dict[str, int] = field(default_factory=dict)  # target tokens of each task over the interval
    lr: float = 0.0  # learning rate of the last update
    grad_norm: float = 0.0  # gradient norm of the last update (before clipping)
    tokens: int = 0  # decoder token positions processed
    audio_seconds: float = 0.0  # seconds of audio encoded
    flops: float = 0.0  # useful model FLOPs of all ranks (training/model_flops.py, summed over ranks)
    seconds: float = 0.0  # wall time of the interval


class MetricsLogger:
    """Writes IntervalMetrics to metrics.jsonl and wandb on the logging rank; a no-op elsewhere."""

    def __init__(self, run_dir: str | Path, wandb_config: WandbConfig, config_dict: dict, is_logging_rank: bool,
                 devices: int = 1) -> None:
        self.is_logging_rank = is_logging_rank
        self.devices = devices
        self.started = time.monotonic()
        self._file = None
        self._wandb_run = None
        if not is_logging_rank:
            return
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._file = (run_dir / METRICS_FILE).open("a", encoding="utf-8")
        if wandb_config.mode != "disabled":
            self._wandb_run = _start_wandb(run_dir, wandb_config, config_dict)

    def log(self, metrics: IntervalMetrics) -> dict:
        """Record one interval; returns the line written (empty on other ranks)."""
        if not self.is_logging_rank:
            return {}
        seconds = max(metrics.seconds, 1e-9)
        line = {
            "step": metrics.step,
            "loss": metrics.loss,
            "task_loss": dict(metrics.task_losses),
            "task_tokens": dict(metrics.task_tokens),
            "lr": metrics.lr,
            "grad_norm": metrics.grad_norm,
            "tokens_per_s": metrics.tokens / seconds,
            "audio_seconds_per_s": metrics.audio_seconds / seconds,
            "tflops_per_device": metrics.flops / seconds / self.devices / 1e12,
            "elapsed_s": time.monotonic() - self.started,
        }
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        if self._wandb_run is not None:
            flat = {key: value for key, value in line.items() if key not in ("step", "task_loss", "task_tokens")}
            flat.update({f"task_loss/{task}": value for task, value in metrics.task_losses.items()})
            self._wandb_run.log(flat, step=metrics.step)
        return line

    def log_eval(self, step: int, loss: float) -> dict:
        """Record a held-out evaluation (mean loss per target token) after `step`; returns the line written."""
        if not self.is_logging_rank:
            return {}
        line = {"step": step, "heldout_loss": loss}
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        if self._wandb_run is not None:
            self._wandb_run.log({"heldout_loss": loss}, step=step)
        return line

    def close(self) -> None:
        """Flush and finish; the logger logs nothing afterwards."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None
        self.is_logging_rank = False


def _start_wandb(run_dir: Path, wandb_config: WandbConfig, config_dict: dict):
    """Start or continue the run directory's wandb run; its files go under run_dir/wandb."""
    import wandb

    id_file = run_dir / WANDB_RUN_ID_FILE
    if id_file.exists():
        run_id = id_file.read_text(encoding="utf-8").strip()
    else:
        run_id = secrets.token_hex(8)
        id_file.write_text(run_id + "\n", encoding="utf-8")
    return wandb.init(project=wandb_config.project, entity=wandb_config.entity, mode=wandb_config.mode,
                      dir=str(run_dir), id=run_id, resume="allow", name=run_dir.name, config=config_dict)
