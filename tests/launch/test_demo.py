"""The README's main job, shortened: `launch/demo.sh` on the real Asterisk speech with a few steps per stage runs the
whole recipe (data, copy and text-only stages, stage 1, stage 2, evaluation, report) on 2 CPU processes and leaves
every file the README promises; each stage's training loss falls; running it again resumes instead of starting over."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from process_launch import training_environment

REPO = Path(__file__).resolve().parents[2]
STEPS = (8, 8, 8, 8)
STAGES = ("copy_pretrain", "text_pretrain", "stage1", "stage2")


def _run_demo(out: Path, environment: dict, *options: str) -> subprocess.CompletedProcess:
    started = time.monotonic()
    finished = subprocess.run(["bash", "launch/demo.sh", str(out), "--steps", ",".join(map(str, STEPS)),
                               "--eval-samples", "40", *options], cwd=REPO, env=environment, capture_output=True,
                              text=True, timeout=600, check=False)
    print(f"demo: {time.monotonic() - started:.0f} s")
    if finished.returncode != 0:
        pytest.fail(f"launch/demo.sh failed:\n{finished.stdout[-3000:]}\n{finished.stderr[-5000:]}")
    return finished


@pytest.fixture(scope="module")
def demo(tmp_path_factory, qwen_tokenizer_file, debian_cache_dir):
    out = tmp_path_factory.mktemp("demo")
    environment = training_environment(qwen_tokenizer_file)
    environment["WANDB_MODE"] = "offline"  # as the README's command runs it
    first = _run_demo(out, environment)
    # as on a machine without network access, from the manifests the first run wrote; the defaults spelt out
    second = _run_demo(out, environment, "--from-manifests", "--configs", "configs/demo", "--nproc", "2")
    return {"out": out, "first": first.stdout, "second": second.stdout}


def _training_lines(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if "loss" in line]


def test_every_stage_trained_and_its_loss_fell(demo):
    for stage in STAGES:
        lines = _training_lines(demo["out"] / stage)
        assert lines[-1]["step"] == STEPS[STAGES.index(stage)], stage
        assert lines[-1]["loss"] < lines[0]["loss"], stage
        assert (demo["out"] / stage / "checkpoints" / f"step-{STEPS[STAGES.index(stage)]}" / "complete").is_file()
        assert list((demo["out"] / stage / "wandb").glob("offline-run-*")), stage


def test_evaluation_and_report_files_exist_and_the_table_is_printed(demo):
    out = demo["out"]
    records = (out / "eval" / "samples.jsonl").read_text().splitlines()
    assert len(records) == 40
    for name in ("metrics.json", "metrics.md", "audio_dependence.json"):
        assert (out / "eval" / name).is_file(), name
    report = (out / "report" / "report.md").read_text()
    assert "language identification accuracy" in report and "own vs swapped audio" in report
    assert len(list((out / "report").glob("*.png"))) == len(STAGES) + 1
    assert "| task |" in demo["first"] and "report:" in demo["first"]


def test_running_again_resumes_every_stage_instead_of_retraining(demo):
    for stage in STAGES:
        steps = [line["step"] for line in _training_lines(demo["out"] / stage)]
        assert steps == sorted(set(steps)), stage  # the second run logged no training step again
    assert demo["second"].count("resumed from") == len(STAGES)
    assert "usable prompts" in demo["first"] and "usable prompts" not in demo["second"]  # no download the 2nd time
