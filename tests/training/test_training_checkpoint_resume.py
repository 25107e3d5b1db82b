"""Checkpoints through real megatron-core training on CPU: resharded resume, RNG restore, loader position, preemption.

Three launches of `checkpoint_worker.py` (each costs seconds, so each does several things):
- 2 processes, TP=2: trains and saves (keep_last=2), then continues one step: the uninterrupted reference;
- 1 process, TP=1: resumes "auto" after the test has left cut-off checkpoint folders beside the good ones;
- 2 processes: resumes at PP=2, resumes a dropout run at TP=2, and checks the preemption flag.
A resumed step must reproduce the uninterrupted one: loss to 1e-6 and every parameter after the update to 1e-6
relative, while the update itself moves every parameter by more than 1e-5 (so an optimizer state that was not
restored, e.g. Adam's moments or step count, would show).
"""
import os
import shutil
from pathlib import Path

import pytest
import torch
from process_launch import clean_environment, torchrun

from megatron_qwen_audio.model.parameter_shards import tensor_parallel_shard
from megatron_qwen_audio.training.checkpointing import COMPLETE_MARKER, SHARDED_DIR
from megatron_qwen_audio.training.config import load_config

HERE = Path(__file__).parent

WORKER = HERE / "checkpoint_worker.py"
HELPER_DIRS = (HERE.parent / "runtime", HERE.parent / "data")
LAUNCH_TIMEOUT_S = 300
TOLERANCE = 1e-6


def _torchrun(processes: int, phase: str, out: Path) -> list[dict]:
    """Run one phase (torchrun --standalone picks a free port) and return each rank's observations."""
    environment = clean_environment()
    environment["PYTHONPATH"] = os.pathsep.join([*map(str, HELPER_DIRS), environment.get("PYTHONPATH", "")])
    torchrun(processes, [str(WORKER), "--phase", phase, "--out", str(out)], phase, LAUNCH_TIMEOUT_S, environment)
    return [torch.load(out / f"{phase}-rank{rank}.pt", weights_only=True) for rank in range(processes)]


def _cut_off_checkpoints(checkpoints: Path) -> None:
    """What crashes leave behind: a newer step whose `complete` marker was never written, and a `.tmp-step-N`
    folder whose ranks had not all finished."""
    shutil.copytree(checkpoints / "step-3", checkpoints / "step-5")
    (checkpoints / "step-5" / COMPLETE_MARKER).unlink()
    shutil.copytree(checkpoints / "step-3" / SHARDED_DIR, checkpoints / ".tmp-step-4" / SHARDED_DIR)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("checkpoints")
    saved = _torchrun(2, "save", out)
    _cut_off_checkpoints(out / "reshard" / "checkpoints")
    single = _torchrun(1, "resume-single", out)[0]
    pairs = _torchrun(2, "resume-pairs", out)
    return {"out": out, "saved": saved, "single": single, "pairs": pairs}


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).norm() / expected.norm())


def _full_params(ranks: list[dict], field: str) -> dict[str, torch.Tensor]:
    """Parameters of unsplit ranks (TP=1), merged over pipeline stages (names are global)."""
    merged = {}
    for rank in ranks:
        assert not merged.keys() & rank[field]["params"].keys()
        merged.update(rank[field]["params"])
    return merged


def _assert_tp2_shards_match(saved: list[dict], full: dict[str, torch.Tensor]) -> None:
    assert set(full) == set(saved[0]["continued"]["params"])
    for rank in saved:
        tp_rank = rank["layout"]["tensor_parallel_rank"]
        for name, shard in rank["continued"]["params"].items():
            expected = tensor_parallel_shard(full[name], name, tp_rank, 2)
            assert _relative_error(shard, expected) <= TOLERANCE, (name, tp_rank, _relative_error(shard, expected))


def test_tp2_checkpoint_resumes_at_tp1_like_the_uninterrupted_run(runs):
    single, saved = runs["single"], runs["saved"]
    assert single["resumed_from"] == "step-3" and single["resumed"]["step"] == 3
    assert abs(single["continued"]["loss"] - saved[0]["continued"]["loss"]) <= TOLERANCE * saved[0]["continued"]["loss"]
    _assert_tp2_shards_match(saved, single["continued"]["params"])


def test_tp2_checkpoint_resumes_at_pp2_like_the_uninterrupted_run(runs):
    pairs, saved = runs["pairs"], runs["saved"]
    last_stage = [rank for rank in pairs if rank["pipeline_layout"]["is_last_stage"]]
    assert len(last_stage) == 1
    loss = last_stage[0]["pipeline_continued"]["loss"]
    assert abs(loss - saved[0]["continued"]["loss"]) <= TOLERANCE * saved[0]["continued"]["loss"]
    _assert_tp2_shards_match(saved, _full_params(pairs, "pipeline_continued"))


def test_the_resumed_update_moves_every_parameter_beyond_the_tolerance(runs):
    """Guards the two tests above: an update within the tolerance would make their parameter checks vacuous."""
    for rank in runs["saved"]:
        before, after = rank["saved_params"], rank["continued"]["params"]
        assert min(_relative_error(after[name], before[name]) for name in before) > 10 * TOLERANCE


def test_weights_only_load_reshards_the_saved_parameters_exactly(runs):
    full = runs["single"]["weights_only_params"]
    for rank in runs["saved"]:
        tp_rank = rank["layout"]["tensor_parallel_rank"]
        for name, shard in rank["saved_params"].items():
            assert torch.equal(shard, tensor_parallel_shard(full[name], name, tp_rank, 2)), name


def test_same_layout_resume_restores_rng_so_the_dropout_step_is_identical(runs):
    for resumed, saved in zip(runs["pairs"], runs["saved"]):
        assert resumed["dropout_resumed"]["rng_restored"]
        expected, actual = saved["dropout_continued"], resumed["dropout_continued"]
        assert torch.equal(actual["loss"], expected["loss"])
        for name, param in expected["params"].items():
            assert torch.equal(actual["params"][name], param), name
        # the control: the same checkpoint with other dropout masks takes another step
        reseeded = resumed["dropout_reseeded"]
        assert reseeded["loss"] != expected["loss"]
        assert any(not torch.equal(reseeded["params"][name], param) for name, param in expected["params"].items())


def test_layout_change_reseeds_instead_of_restoring_rng(runs):
    assert not runs["single"]["resumed"]["rng_restored"]


def test_keep_last_prunes_the_oldest_complete_checkpoint(runs):
    assert runs["saved"][0]["kept_after_save"] == ["step-2", "step-3"]


def test_auto_resume_skips_cut_off_checkpoints_with_one_warning_each(runs):
    checkpoints = runs["out"] / "reshard" / "checkpoints"
    warnings = runs["single"]["warnings"]
    assert len(warnings) == 2, warnings
    for folder in (".tmp-step-4", "step-5"):
        assert sum(str(checkpoints / folder) in warning for warning in warnings) == 1, (folder, warnings)
        assert all("\n" not in warning for warning in warnings)


def test_loader_position_round_trips_and_resumes_at_the_next_batch(runs):
    saved, single = runs["saved"][0], runs["single"]
    assert single["resumed"]["loader"] == saved["loader_state"]
    assert single["loader_next_keys"] == saved["loader_next_keys"]
    assert saved["loader_next_keys"] != saved["loader_first_keys"]  # the position matters


def test_scheduler_state_extra_and_config_are_stored(runs):
    resumed = runs["single"]["resumed"]
    assert resumed["scheduler"] == {"scheduler_step": 3}
    assert resumed["extra"] == {"consumed_samples": 12}
    config = load_config(runs["out"] / "reshard" / "checkpoints" / "step-3" / "config.yaml")
    assert config.seed == 1234 and config.run_dir == str(runs["out"] / "reshard")


def test_preemption_signal_on_one_rank_stops_all_ranks_at_the_same_step(runs):
    observed = [rank["preemption"] for rank in runs["pairs"]]
    assert [rank["stopped_at"] for rank in observed] == [3, 3]
    # rank 1 got SIGUSR1 at step 3; rank 0 stopped with it before its own SIGTERM (step 5) arrived
    assert [rank["received"] for rank in observed] == [None, "SIGUSR1"]
