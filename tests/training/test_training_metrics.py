"""The metrics log: JSON lines with the rates computed from the interval, wandb offline runs that a resumed run
continues, and silence on every rank but the logging one."""
import json

import pytest

from megatron_qwen_audio.training.config import WandbConfig
from megatron_qwen_audio.training.metrics import METRICS_FILE, WANDB_RUN_ID_FILE, IntervalMetrics, MetricsLogger

INTERVAL = IntervalMetrics(step=10, loss=2.5, task_losses={"asr": 2.0, "aac": 3.25},
                           task_tokens={"asr": 4000, "aac": 2000}, lr=1e-4, grad_norm=0.75,
                           tokens=6000, audio_seconds=120.0, flops=8e12, seconds=2.0)
NO_WANDB = WandbConfig(mode="disabled")


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch) -> None:
    """Offline mode, with every folder wandb writes outside the run directory kept under tmp_path."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for variable in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "wandb_home" / variable.lower()))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def _lines(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]


def test_metric_line_holds_the_interval_rates(tmp_path):
    logger = MetricsLogger(tmp_path / "run", NO_WANDB, {}, is_logging_rank=True, devices=4)
    returned = logger.log(INTERVAL)
    logger.close()
    (line,) = _lines(tmp_path / "run")
    assert line == returned
    elapsed = line.pop("elapsed_s")
    assert 0 <= elapsed < 60
    assert line == {
        "step": 10, "loss": 2.5, "task_loss": {"asr": 2.0, "aac": 3.25},
        "task_tokens": {"asr": 4000, "aac": 2000}, "lr": 1e-4, "grad_norm": 0.75,
        "tokens_per_s": 3000.0,  # 6000 tokens in 2 s
        "audio_seconds_per_s": 60.0,  # 120 s of audio in 2 s
        "tflops_per_device": 1.0,  # 8e12 FLOPs in 2 s over 4 devices
    }


def test_a_second_logger_appends_to_the_same_file(tmp_path):
    for step in (10, 20):
        logger = MetricsLogger(tmp_path, NO_WANDB, {}, is_logging_rank=True)
        logger.log(IntervalMetrics(step=step, loss=1.0, seconds=1.0))
        logger.close()
    assert [line["step"] for line in _lines(tmp_path)] == [10, 20]
    assert not (tmp_path / WANDB_RUN_ID_FILE).exists()  # disabled wandb draws no run


def test_heldout_loss_is_a_line_of_its_own_after_the_training_line(tmp_path):
    logger = MetricsLogger(tmp_path, NO_WANDB, {}, is_logging_rank=True)
    logger.log(IntervalMetrics(step=10, loss=1.0, seconds=1.0))
    assert logger.log_eval(10, 1.75) == {"step": 10, "heldout_loss": 1.75}
    logger.close()
    training, heldout = _lines(tmp_path)
    assert training["loss"] == 1.0 and "heldout_loss" not in training
    assert heldout == {"step": 10, "heldout_loss": 1.75}


def test_non_logging_ranks_write_nothing(tmp_path, wandb_offline):
    run_dir = tmp_path / "run"
    logger = MetricsLogger(run_dir, WandbConfig(), {"steps": 4}, is_logging_rank=False)
    assert logger.log(INTERVAL) == {}
    assert logger.log_eval(10, 1.0) == {}
    logger.close()
    assert not run_dir.exists()
    assert not (tmp_path / "wandb_home").exists()


def test_wandb_offline_run_lives_in_the_run_dir_and_resumes(tmp_path, wandb_offline):
    run_dir = tmp_path / "run"
    config = WandbConfig(project="unit-test")
    assert config.mode == "offline"  # resolved from WANDB_MODE
    for step in (10, 20):  # the second logger is a resumed run in the same run directory
        logger = MetricsLogger(run_dir, config, {"steps": 4, "optimizer": {"lr": 1e-4}}, is_logging_rank=True)
        logger.log(IntervalMetrics(step=step, loss=2.5, task_losses={"asr": 2.0}, seconds=1.0))
        logger.log_eval(step, 2.25)
        logger.close()
    run_id = (run_dir / WANDB_RUN_ID_FILE).read_text().strip()
    assert run_id
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    for run in runs:
        assert f"-{run_id}" in run.name  # wandb adds "-1" when both runs start in the same second
        records = (run / f"run-{run_id}.wandb").read_bytes()
        for key in (b"task_loss/asr", b"heldout_loss", b"tokens_per_s", b"grad_norm", run_id.encode()):
            assert key in records, (run.name, key)
    assert [line["step"] for line in _lines(run_dir)] == [10, 10, 20, 20]
