"""launch/slurm/*.sbatch on a real one-node SLURM cluster (slurm_cluster.py), 2 CPU ranks per job:
- "uninterrupted": pretrain.sbatch, tiny stage-1 config at TP=2, runs to its last step, logging metrics and saving;
- "preempted": the same job, warned with `scancel --signal=USR1 --batch` once training has started: the batch shell
  forwards the warning to the ranks, they save and exit 0, the script requeues the job, and the requeued run resumes
  (resume: auto) from that checkpoint to the last step. Its metrics must equal the uninterrupted run's step by step;
- "sft": sft.sbatch, tiny stage-2 config at PP=2, starting from "uninterrupted" (init_from; sbatch --dependency).
All jobs are submitted at once (each waits for the 2 CPUs), then waited for with bounded timeouts.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_launch import training_environment
from slurm_cluster import job_state, wait_for_job

from megatron_qwen_audio.text.tokenizer import QwenTokenizer

HERE = Path(__file__).parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "data"))
from synthetic_shard_sets import write_shard_set  # noqa: E402

STAGE1 = REPO / "configs" / "tiny_stage1.yaml"
STAGE2 = REPO / "configs" / "tiny_stage2.yaml"
STEPS = 12  # the warning, sent once step 1 is logged, must reach the ranks before the last step
SFT_STEPS = 2
JOB_TIMEOUT_S = 150
SUBMIT_TIMEOUT_S = 60
DETERMINISTIC_METRICS = ("step", "loss", "lr", "grad_norm")  # not the speeds and times


def _checked(command: list[str], environment: dict[str, str]) -> str:
    finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True,
                              timeout=SUBMIT_TIMEOUT_S)
    assert finished.returncode == 0, f"{' '.join(command)} exited {finished.returncode}: {finished.stderr}"
    return finished.stdout


def _output_file(run_dir: Path, job_id: str) -> Path:
    """Where sbatch --output (see _sbatch) sends the job's stdout and stderr, appended across requeues."""
    return run_dir.parent / f"{run_dir.name}-{job_id}.out"


def _sbatch(script: str, run_dir: Path, arguments: list[str], environment: dict[str, str],
            options: tuple[str, ...] = ()) -> str:
    """Submit `script CONFIG overrides` as 2 CPU tasks on one node; returns the job id."""
    submitted = _checked(["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0",
                          f"--output={_output_file(run_dir, '%j')}", *options, script, *arguments,
                          f"run_dir={run_dir}"], environment)
    return submitted.strip().split(";")[0]


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _job_output(run_dir: Path, job_id: str) -> str:
    path = _output_file(run_dir, job_id)
    return path.read_text() if path.is_file() else f"(no {path})"


@pytest.fixture(scope="module")
def jobs(slurm_cluster, tmp_path_factory, qwen_tokenizer_file):
    root = tmp_path_factory.mktemp("slurm_runs")
    fingerprint = QwenTokenizer.from_file(qwen_tokenizer_file).fingerprint
    write_shard_set(root / "shards" / "train", [14, 12], seed=1, tokenizer_fingerprint=fingerprint)
    write_shard_set(root / "shards" / "heldout", [6], seed=2, tokenizer_fingerprint=fingerprint)
    environment = training_environment(qwen_tokenizer_file, slurm_cluster)
    common = [f"data.train=[{{path_or_url: {root / 'shards' / 'train'}}}]",
              f"data.heldout=[{{path_or_url: {root / 'shards' / 'heldout'}}}]",
              "data.loader.workers=0", "data.loader.max_batch_tokens=320", "optimizer.decay=constant",
              "log_interval=1", "eval_interval=0", "keep_last=0"]
    stage1 = [str(STAGE1), *common, "parallel.tensor_parallel=2", f"steps={STEPS}", f"save_interval={STEPS}"]
    dirs = {name: root / name for name in ("uninterrupted", "preempted", "sft")}
    started = time.monotonic()
    ids = {name: _sbatch("launch/slurm/pretrain.sbatch", dirs[name], stage1, environment)
           for name in ("uninterrupted", "preempted")}
    ids["sft"] = _sbatch("launch/slurm/sft.sbatch", dirs["sft"],
                         [str(STAGE2), *common, "parallel.pipeline_parallel=2", f"steps={SFT_STEPS}",
                          f"save_interval={SFT_STEPS}", f"init_from={dirs['uninterrupted']}"],
                         environment, (f"--dependency=afterok:{ids['uninterrupted']}",))

    deadline = time.monotonic() + 2 * JOB_TIMEOUT_S
    while not _metrics(dirs["preempted"]):
        state, _ = job_state(ids["preempted"], environment)
        assert state in ("PENDING", "RUNNING"), (f"job {ids['preempted']} is {state} before logging a step:\n"
                                                 f"{_job_output(dirs['preempted'], ids['preempted'])}")
        assert time.monotonic() < deadline, "the preempted job logged no step in time"
        time.sleep(0.2)
    _checked(["scancel", "--signal=USR1", "--batch", ids["preempted"]], environment)

    ends = {name: wait_for_job(job_id, environment, JOB_TIMEOUT_S, _output_file(dirs[name], job_id))
            for name, job_id in ids.items()}
    print(f"slurm jobs: {time.monotonic() - started:.1f} s", ends)
    return {"dirs": dirs, "ends": ends,
            "outputs": {name: _job_output(dirs[name], job_id) for name, job_id in ids.items()}}


def _deterministic(metrics: list[dict]) -> list[dict]:
    return [{key: line[key] for key in DETERMINISTIC_METRICS} for line in metrics]


def test_pretrain_sbatch_runs_two_ranks_to_the_last_step_and_saves(jobs):
    assert jobs["ends"]["uninterrupted"] == ("COMPLETED", 0), jobs["outputs"]["uninterrupted"]
    metrics = _metrics(jobs["dirs"]["uninterrupted"])
    assert [line["step"] for line in metrics] == list(range(1, STEPS + 1))
    assert all(line["loss"] > 0 for line in metrics)
    assert (jobs["dirs"]["uninterrupted"] / "checkpoints" / f"step-{STEPS}" / "complete").is_file()


def test_preemption_warning_saves_requeues_and_the_resumed_run_matches_the_uninterrupted_one(jobs):
    output = jobs["outputs"]["preempted"]
    assert jobs["ends"]["preempted"] == ("COMPLETED", 1), output
    saved = re.findall(rf"preemption signal: saved step (\d+) of {STEPS}, stopping", output)
    assert len(saved) == 1, output
    stopped_at = int(saved[0])
    assert 1 <= stopped_at < STEPS, output
    assert re.search(rf"resumed from \S+/checkpoints/step-{stopped_at} at step {stopped_at}\n", output), output
    assert _deterministic(_metrics(jobs["dirs"]["preempted"])) == \
        _deterministic(_metrics(jobs["dirs"]["uninterrupted"]))


def test_sft_sbatch_starts_from_the_stage1_run_and_saves(jobs):
    output = jobs["outputs"]["sft"]
    assert jobs["ends"]["sft"] == ("COMPLETED", 0), output
    assert f"initial weights from {jobs['dirs']['uninterrupted']}\n" in output, output
    assert [line["step"] for line in _metrics(jobs["dirs"]["sft"])] == list(range(1, SFT_STEPS + 1))
    assert (jobs["dirs"]["sft"] / "checkpoints" / f"step-{SFT_STEPS}" / "complete").is_file()
