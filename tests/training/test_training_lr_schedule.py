"""The learning-rate schedule against hand-computed values and megatron's own OptimizerParamScheduler."""
import math

import pytest
import torch

from megatron_qwen_audio.training.config import ConfigError, OptimizerConfig, check_optimizer_schedule
from megatron_qwen_audio.training.lr_schedule import LRScheduler, learning_rate

TOTAL = 110
COSINE = OptimizerConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, decay="cosine", weight_decay=0.1)
LINEAR = OptimizerConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, decay="linear", weight_decay=0.1)
CONSTANT = OptimizerConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, decay="constant", weight_decay=0.1)


@pytest.mark.parametrize(("config", "step", "expected"), [
    (COSINE, 0, 0.0),  # warmup starts from 0
    (COSINE, 1, 1e-4),  # the first update: 1/10 of the peak
    (COSINE, 5, 5e-4),  # mid-warmup
    (COSINE, 10, 1e-3),  # end of warmup: the peak
    (COSINE, 35, 1e-4 + 9e-4 * (1 + math.sqrt(0.5)) / 2),  # a quarter into the decay
    (COSINE, 60, 5.5e-4),  # half-way: halfway between lr and min_lr
    (COSINE, 110, 1e-4),  # the last step
    (COSINE, 500, 1e-4),  # beyond the end
    (LINEAR, 5, 5e-4),
    (LINEAR, 35, 7.75e-4),
    (LINEAR, 60, 5.5e-4),
    (LINEAR, 110, 1e-4),
    (LINEAR, 500, 1e-4),
    (CONSTANT, 5, 5e-4),
    (CONSTANT, 60, 1e-3),
    (CONSTANT, 500, 1e-3),
])
def test_learning_rate_matches_hand_computed_values(config, step, expected):
    assert learning_rate(step, config, TOTAL) == pytest.approx(expected, rel=1e-12, abs=1e-18)


def test_no_warmup_starts_at_the_peak():
    config = OptimizerConfig(lr=1e-3, min_lr=0.0, warmup_steps=0, decay="linear")
    assert learning_rate(0, config, 100) == 1e-3
    assert learning_rate(25, config, 100) == pytest.approx(7.5e-4, rel=1e-12)


@pytest.mark.parametrize("config", [COSINE, LINEAR, CONSTANT], ids=["cosine", "linear", "constant"])
def test_learning_rate_matches_megatrons_scheduler(config):
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    reference = OptimizerParamScheduler(
        optimizer, init_lr=0.0, max_lr=config.lr, min_lr=config.min_lr, lr_warmup_steps=config.warmup_steps,
        lr_decay_steps=TOTAL, lr_decay_style=config.decay, start_wd=0.0, end_wd=0.0, wd_incr_steps=TOTAL,
        wd_incr_style="constant")
    for step in range(TOTAL + 20):
        assert learning_rate(step, config, TOTAL) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12), step
        reference.step(1)


def _megatron_like_optimizer() -> torch.optim.Optimizer:
    """Two groups as megatron's builder makes them: a decayed one and one with wd_mult 0."""
    return torch.optim.AdamW([
        {"params": [torch.nn.Parameter(torch.ones(2, 2))], "wd_mult": 1.0},
        {"params": [torch.nn.Parameter(torch.ones(2))], "wd_mult": 0.0},
    ], lr=123.0, weight_decay=123.0)


def test_scheduler_sets_every_group_before_each_update():
    optimizer = _megatron_like_optimizer()
    schedule = LRScheduler(optimizer, COSINE, TOTAL)
    assert [group["lr"] for group in optimizer.param_groups] == [1e-4, 1e-4]  # ready for the first update
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.1, 0.0]
    for _ in range(4):
        schedule.step()
    assert schedule.completed_steps == 4
    assert schedule.current_lr == pytest.approx(5e-4)
    assert [group["lr"] for group in optimizer.param_groups] == [schedule.current_lr] * 2


def test_scheduler_resumes_from_its_state_dict():
    schedule = LRScheduler(_megatron_like_optimizer(), COSINE, TOTAL)
    for _ in range(34):
        schedule.step()
    state = schedule.state_dict()
    resumed_optimizer = _megatron_like_optimizer()
    resumed = LRScheduler(resumed_optimizer, COSINE, TOTAL)
    resumed.load_state_dict(state)
    assert resumed.completed_steps == 34
    assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(learning_rate(35, COSINE, TOTAL), rel=1e-12)
    resumed.step()
    schedule.step()
    assert resumed.current_lr == schedule.current_lr


@pytest.mark.parametrize(("changes", "message"), [
    ({"min_lr": 2e-3}, "optimizer.min_lr=0.002 is above optimizer.lr=0.001"),
    ({"warmup_steps": 110}, "optimizer.warmup_steps=110 leaves no decay before the last step (steps=110)"),
    ({"warmup_steps": -1}, "optimizer.warmup_steps=-1 must be at least 0"),
    ({"lr": 0.0, "min_lr": 0.0}, "optimizer.lr=0.0 must be positive"),
    ({"decay": "step"}, "optimizer.decay='step' must be one of cosine, linear, constant"),
])
def test_unrunnable_schedules_are_refused(changes, message):
    config = OptimizerConfig(**{**COSINE.__dict__, **changes})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_optimizer_schedule(config, TOTAL)


def test_constant_schedule_may_warm_up_for_the_whole_run():
    check_optimizer_schedule(OptimizerConfig(**{**CONSTANT.__dict__, "warmup_steps": TOTAL}), TOTAL)
