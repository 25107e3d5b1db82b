"""A run killed hard (SIGKILL of one rank, no chance to save) resumes from its last complete checkpoint and ends
exactly where an uninterrupted run ends; the same runs check the per-task and held-out lines of metrics.jsonl.

Three launches of the tiny stage 1 model on 2 CPU processes (2 data-parallel ranks), over a training set whose
samples are tagged with two tasks:
- "uninterrupted": 6 steps, a checkpoint every 3;
- "killed": the same run, one rank SIGKILLed once its step-3 checkpoint is complete (the launcher tears the other
  down), then started again with `resume: auto` for the remaining steps.
"""
import json
import math
import os
import signal
import subprocess
import time
from dataclasses import replace

import pytest
from test_training_trainer import (
    LAUNCH_TIMEOUT_S,
    REPO,
    STAGE1,
    _children,
    _environment,
    _metrics,
    _parameters,
    _run,
    write_shard_set,  # the synthetic shard writer of tests/data, which that module puts on the path
)

from megatron_qwen_audio.data.shard_format import ShardSetIndex
from megatron_qwen_audio.text.tokenizer import QwenTokenizer

STEPS, KILL_AFTER = 6, 3
TASKS = ("aac", "asr")


def _write_two_task_set(directory, fingerprint) -> None:
    """A synthetic set whose even lines are tagged "aac" (the tag only groups the losses; the samples are alike)."""
    write_shard_set(directory, [14, 12], seed=1, tokenizer_fingerprint=fingerprint)
    index = ShardSetIndex.read(directory)
    counts = dict.fromkeys(TASKS, 0)
    for shard in index.shards:
        for position, sample in enumerate(shard.samples):
            task = TASKS[(shard.first_line + position) % 2]
            shard.samples[position] = replace(sample, task=task)
            counts[task] += 1
    index.counts["task"] = counts
    index.write(directory)


def _kill_one_rank_after_checkpoint(command, environment, run_dir) -> int:
    """Start the run; SIGKILL its second rank as soon as checkpoint step-KILL_AFTER is complete."""
    started = time.monotonic()
    marker = run_dir / "checkpoints" / f"step-{KILL_AFTER}" / "complete"
    with subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as launch:
        while not marker.exists():
            assert launch.poll() is None, launch.stdout.read()[-5000:]
            assert time.monotonic() - started < LAUNCH_TIMEOUT_S, "the run saved no checkpoint"
            time.sleep(0.02)
        ranks = sorted(_children(launch.pid))
        assert len(ranks) == 2, ranks
        os.kill(ranks[1], signal.SIGKILL)
        launch.communicate(timeout=LAUNCH_TIMEOUT_S)
    return launch.returncode


@pytest.fixture(scope="module")
def runs(tmp_path_factory, qwen_tokenizer_file):
    root = tmp_path_factory.mktemp("kill")
    fingerprint = QwenTokenizer.from_file(qwen_tokenizer_file).fingerprint
    _write_two_task_set(root / "train", fingerprint)
    write_shard_set(root / "heldout", [6], seed=2, tokenizer_fingerprint=fingerprint)
    environment, timings = _environment(qwen_tokenizer_file), {}
    common = [f"data.train=[{{path_or_url: {root / 'train'}}}]", f"data.heldout=[{{path_or_url: {root / 'heldout'}}}]",
              "data.loader.workers=0", "data.loader.max_batch_tokens=320", "optimizer.decay=constant",
              "log_interval=1", "eval_interval=2", "eval_steps=1", f"save_interval={KILL_AFTER}", "keep_last=0",
              f"steps={STEPS}"]
    dirs = {name: root / name for name in ("uninterrupted", "killed")}
    launch = ["bash", "launch/pretrain.sh", str(STAGE1), "--nproc", "2", *common]
    _run("uninterrupted", [*launch, f"run_dir={dirs['uninterrupted']}"], environment, timings)
    started = time.monotonic()
    killed_exit = _kill_one_rank_after_checkpoint([*launch, f"run_dir={dirs['killed']}"], environment, dirs["killed"])
    timings["killed"] = time.monotonic() - started
    resumed = _run("resumed", [*launch, f"run_dir={dirs['killed']}"], environment, timings)
    print("launch wall times:", {name: f"{seconds:.1f} s" for name, seconds in timings.items()})
    return {"dirs": dirs, "killed_exit": killed_exit, "resumed_stdout": resumed.stdout}


def _last_line_per_step(run_dir) -> dict[int, dict]:
    """Training lines by step; a step the killed run logged after its checkpoint is redone by the resumed run, whose
    line comes later."""
    return {line["step"]: line for line in _metrics(run_dir)}


def test_killed_run_resumes_from_its_last_complete_checkpoint_and_matches_the_uninterrupted_run(runs, tmp_path):
    dirs = runs["dirs"]
    assert runs["killed_exit"] != 0
    checkpoint = dirs["killed"] / "checkpoints" / f"step-{KILL_AFTER}"
    assert f"resumed from {checkpoint} at step {KILL_AFTER}" in runs["resumed_stdout"]
    uninterrupted, killed = _last_line_per_step(dirs["uninterrupted"]), _last_line_per_step(dirs["killed"])
    assert sorted(uninterrupted) == sorted(killed) == list(range(1, STEPS + 1))
    assert [killed[step]["loss"] for step in killed] == [uninterrupted[step]["loss"] for step in killed]
    assert [killed[step]["grad_norm"] for step in killed] == [uninterrupted[step]["grad_norm"] for step in killed]
    expected = _parameters(dirs["uninterrupted"] / "checkpoints" / f"step-{STEPS}", tmp_path)
    actual = _parameters(dirs["killed"] / "checkpoints" / f"step-{STEPS}", tmp_path)
    assert expected.keys() == actual.keys() and len(expected) > 10
    changed = 0
    for name, tensor in expected.items():
        assert (actual[name] == tensor).all(), name
        changed += name.startswith("audio_encoder.")
    assert changed


def test_task_losses_weighted_by_their_tokens_average_to_the_loss(runs):
    lines = _metrics(runs["dirs"]["uninterrupted"])
    seen = set()
    for line in lines:
        task_loss, task_tokens = line["task_loss"], line["task_tokens"]
        assert task_loss.keys() == task_tokens.keys() and set(task_loss) <= set(TASKS)
        seen |= set(task_loss)
        average = sum(task_loss[task] * task_tokens[task] for task in task_loss) / sum(task_tokens.values())
        # the overall sum is one fp32 sum per micro-batch, the task sums add fp32 row sums: equal up to fp32 rounding
        assert average == pytest.approx(line["loss"], rel=1e-6)
        assert all(math.isfinite(value) and value > 0 for value in task_loss.values())
    assert seen == set(TASKS)
    # the tasks' losses and token counts differ enough that neither a copy of the overall loss per task nor an
    # unweighted mean of the task losses could pass the check above
    assert any(abs(sum(line["task_loss"].values()) / len(line["task_loss"]) - line["loss"]) > 1e-4 * line["loss"]
               for line in lines)


def test_heldout_losses_are_logged_at_every_eval_interval(runs):
    text = (runs["dirs"]["uninterrupted"] / "metrics.jsonl").read_text()
    heldout = [json.loads(line) for line in text.splitlines() if "heldout_loss" in line]
    assert [line["step"] for line in heldout] == [2, 4, 6]
    assert all(math.isfinite(line["heldout_loss"]) and line["heldout_loss"] > 0 for line in heldout)
    # the same held-out batches every time, under weights that changed: the loss moves
    assert len({line["heldout_loss"] for line in heldout}) == 3
