"""The learning-rate schedule: linear warmup from 0 to the peak, then decay to min_lr at the run's last step.

Steps are counted the way megatron's OptimizerParamScheduler counts them (`num_steps`), so its formulas are the
reference: `learning_rate(k)` is the rate of the k-th optimizer update (k = 1 for the first). Warmup reaches the peak
at update `warmup_steps`, decay reaches min_lr at update `total_steps`, the run's last, so no update is spent at rate
0 and the last one is taken at min_lr. Past `total_steps` (a run extended without a new schedule) the rate stays at
min_lr.

`LRScheduler` writes the rate into every parameter group of a megatron optimizer before each update, together with
the group's weight decay (the config's weight_decay times the group's `wd_mult`, 0 for the groups that take no decay;
see training/optimizer.py). Megatron keeps those multipliers in the groups but applies them only through its own
scheduler, which this one replaces.
"""
from __future__ import annotations

import math

from megatron_qwen_audio.training.config import OptimizerConfig, check_optimizer_schedule

__all__ = ["LRScheduler", "learning_rate"]


def learning_rate(step: int, config: OptimizerConfig, total_steps: int) -> float:
    """The rate of optimizer update number `step` (1 for the first; 0 gives the warmup's starting point, 0.0).

    Warmup: lr * step / warmup_steps up to step == warmup_steps. Then, over the updates up to total_steps:
    cosine: min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2; linear: lr - (lr - min_lr) * progress;
    constant: lr. Past total_steps: min_lr (constant: lr). Check the config with check_optimizer_schedule() first.
    """
    assert step >= 0, f"step {step} is negative"
    if config.warmup_steps > 0 and step <= config.warmup_steps:
        return config.lr * step / config.warmup_steps
    if config.decay == "constant":
        return config.lr
    if step >= total_steps:
        return config.min_lr
    progress = (step - config.warmup_steps) / (total_steps - config.warmup_steps)
    if config.decay == "cosine":
        remaining = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        remaining = 1.0 - progress
    return config.min_lr + (config.lr - config.min_lr) * remaining


class LRScheduler:
    """Sets the learning rate and weight decay of a megatron optimizer's parameter groups for the next update.

    Construction prepares the first update (or, with `completed_steps`, the one after a resumed run's last); call
    `step()` after every optimizer update. `state_dict()` is the count of completed updates, so a checkpoint resumes
    the schedule where it stopped even when the config's steps change.
    """

    def __init__(self, optimizer, config: OptimizerConfig, total_steps: int, completed_steps: int = 0) -> None:
        check_optimizer_schedule(config, total_steps)
        self.optimizer = optimizer
        self.config = config
        self.total_steps = total_steps
        self.completed_steps = completed_steps
        self._apply()

    @property
    def current_lr(self) -> float:
        """The rate the next update takes (what the metrics log reports for it)."""
        return learning_rate(self.completed_steps + 1, self.config, self.total_steps)

    def step(self) -> None:
        """Count one finished update and prepare the next."""
        self.completed_steps += 1
        self._apply()

    def state_dict(self) -> dict[str, int]:
        return {"completed_steps": self.completed_steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.completed_steps = int(state["completed_steps"])
        self._apply()

    def _apply(self) -> None:
        # every group, empty ones included: megatron aligns the groups across ranks, and a rank that holds no
        # trainable parameter still reports the rate of its (empty) groups
        rate = self.current_lr
        for group in self.optimizer.param_groups:
            group["lr"] = rate
            group["weight_decay"] = self.config.weight_decay * group.get("wd_mult", 1.0)
