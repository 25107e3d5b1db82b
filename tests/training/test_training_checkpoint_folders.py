"""Finding, choosing and pruning checkpoint folders, and the preemption flag, without a process group.

The folders are built by hand the way `CheckpointManager.save` and a crash leave them (a `complete` marker, or not);
what is inside them is tested by the multi-process resume tests.
"""
import logging
import os
import signal
from pathlib import Path

import pytest

from megatron_qwen_audio.training.checkpointing import (
    CHECKPOINTS_DIR,
    COMPLETE_MARKER,
    META_FILE,
    CheckpointError,
    CheckpointManager,
    checkpoint_folder,
)
from megatron_qwen_audio.training.preemption import PreemptionFlag


def _checkpoint(run_dir: Path, name: str, complete: bool) -> Path:
    folder = run_dir / CHECKPOINTS_DIR / name
    folder.mkdir(parents=True)
    (folder / META_FILE).write_text("{}")
    if complete:
        (folder / COMPLETE_MARKER).write_text("ok\n")
    return folder


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """Complete steps 2, 3 and 10 (10 sorts before 3 as text), a newer step cut off before its marker, a partial
    `.tmp-step-N`, and an unrelated folder the manager must ignore."""
    for step in (2, 3, 10):
        _checkpoint(tmp_path, f"step-{step}", complete=True)
    _checkpoint(tmp_path, "step-12", complete=False)
    _checkpoint(tmp_path, ".tmp-step-11", complete=False)
    (tmp_path / CHECKPOINTS_DIR / "notes").mkdir()
    return tmp_path


def test_latest_complete_is_the_highest_complete_step_and_warns_once_per_cut_off_folder(run_dir, caplog):
    with caplog.at_level(logging.WARNING):
        assert CheckpointManager(run_dir, keep_last=3).latest_complete() == run_dir / CHECKPOINTS_DIR / "step-10"
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    for name in ("step-12", ".tmp-step-11"):
        assert sum(str(run_dir / CHECKPOINTS_DIR / name) in warning for warning in warnings) == 1


def test_latest_complete_of_a_new_run_is_none(tmp_path):
    assert CheckpointManager(tmp_path, keep_last=3).latest_complete() is None


def test_prune_keeps_the_newest_complete_checkpoints_and_leaves_incomplete_ones(run_dir):
    CheckpointManager(run_dir, keep_last=2).prune()
    left = sorted(path.name for path in (run_dir / CHECKPOINTS_DIR).iterdir())
    assert left == [".tmp-step-11", "notes", "step-10", "step-12", "step-3"]


def test_keep_last_zero_keeps_everything(run_dir):
    before = sorted((run_dir / CHECKPOINTS_DIR).iterdir())
    CheckpointManager(run_dir, keep_last=0).prune()
    assert sorted((run_dir / CHECKPOINTS_DIR).iterdir()) == before


def test_negative_keep_last_is_refused(tmp_path):
    with pytest.raises(ValueError, match="keep_last=-1"):
        CheckpointManager(tmp_path, keep_last=-1)


def test_resume_setting_picks_the_checkpoint(run_dir):
    manager = CheckpointManager(run_dir, keep_last=3)
    checkpoints = run_dir / CHECKPOINTS_DIR
    assert manager.checkpoint_to_resume("auto") == checkpoints / "step-10"
    assert manager.checkpoint_to_resume("none") is None
    assert manager.checkpoint_to_resume(str(checkpoints / "step-3")) == checkpoints / "step-3"
    assert manager.checkpoint_to_resume(str(run_dir)) == checkpoints / "step-10"  # another run's newest


def test_an_incomplete_checkpoint_named_explicitly_is_an_error_naming_it(run_dir):
    folder = run_dir / CHECKPOINTS_DIR / "step-12"
    with pytest.raises(CheckpointError, match=f"{folder} is incomplete"):
        checkpoint_folder(folder)


def test_a_path_that_is_no_checkpoint_is_an_error_naming_it(tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'elsewhere'} is neither a checkpoint folder"):
        checkpoint_folder(tmp_path / "elsewhere")
    (tmp_path / CHECKPOINTS_DIR).mkdir()
    with pytest.raises(CheckpointError, match="run directory without a complete checkpoint"):
        checkpoint_folder(tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_preemption_flag_records_the_signal_and_restores_the_handlers(signum):
    previous = signal.getsignal(signum)
    with PreemptionFlag() as flag:
        assert not flag.should_save_and_exit() and flag.received is None
        os.kill(os.getpid(), signum)  # the process survives: the handler only records it
        assert flag.should_save_and_exit() and flag.received == signum
    assert signal.getsignal(signum) == previous
