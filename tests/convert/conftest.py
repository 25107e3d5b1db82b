"""Fixtures of the converter tests: tiny source checkpoints, `mqa-convert` runs, and the torchrun logits worker."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from convert_sources import save_qwen2, save_qwen_v1, save_whisper
from process_launch import clean_environment, torchrun

WORKER = Path(__file__).with_name("converted_model_worker.py")
MODEL_TESTS = Path(__file__).parent.parent / "model"


def run_convert(*arguments: str, expect_ok: bool = True,
                tokenizer_file: Path | None = None) -> subprocess.CompletedProcess:
    """`mqa-convert ARGS` in a fresh process (the converter starts a one-process group of its own)."""
    environment = clean_environment()
    if tokenizer_file is not None:
        environment["MQA_TOKENIZER_FILE"] = str(tokenizer_file)
    finished = subprocess.run([sys.executable, "-m", "megatron_qwen_audio.convert.cli", *arguments],
                              env=environment, capture_output=True, text=True, timeout=300, check=False)
    if expect_ok and finished.returncode != 0:
        pytest.fail(f"mqa-convert {' '.join(arguments)} failed:\n{finished.stdout}\n{finished.stderr[-4000:]}")
    return finished


def layout_logits(checkpoint: Path, layouts: dict[int, str], out: Path, *extra: str) -> dict[str, dict]:
    """{layout: the worker's result} for each process count -> comma-separated layouts."""
    out.mkdir(parents=True, exist_ok=True)
    environment = clean_environment()
    environment["PYTHONPATH"] = os.pathsep.join([str(WORKER.parent), str(MODEL_TESTS), str(WORKER.parent.parent)])
    for processes, names in layouts.items():
        torchrun(processes, [str(WORKER), "--ckpt", str(checkpoint), "--layouts", names, "--out", str(out), *extra],
                 f"converted checkpoint at {names}", timeout_s=600, environment=environment)
    results = {}
    for file in out.glob("*.pt"):
        results[file.name.split("-rank")[0]] = torch.load(file)
    return results


@pytest.fixture(scope="session")
def sources(tmp_path_factory) -> dict:
    """The tiny transformers models and their saved directories."""
    root = tmp_path_factory.mktemp("sources")
    qwen2 = save_qwen2(root)
    save_qwen_v1(root, qwen2)
    whisper = save_whisper(root)
    return {"root": root, "qwen2": qwen2, "whisper": whisper}
