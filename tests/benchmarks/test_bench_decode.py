"""The decoding benchmark, run as a user runs it (a fresh process) on the CPU runtime with the demo's model: every
batch size decodes every prompt to the same tokens as one prompt at a time (fp32), and its rates are its totals over
its time. Five prompts in batches of 2 leave a last batch of one, which a batching bug that drops or repeats a row
would show."""
from pathlib import Path

import pytest
from process_launch import run_benchmark

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_decode.py"
PROMPTS, NEW_TOKENS, BATCH_SIZES = 5, 3, (1, 2, 5)


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "figures.json"
    return run_benchmark(SCRIPT, ["--device", "cpu", "--config", "configs/demo/stage2.yaml", "--samples",
                                  str(PROMPTS), "--batch-sizes", ",".join(map(str, BATCH_SIZES)), "--new-tokens",
                                  str(NEW_TOKENS)], out, timeout_s=180)


def test_every_batch_size_decodes_every_prompt_to_the_same_tokens(figures):
    assert figures["precision"] == "fp32" and figures["prompts"] == PROMPTS
    assert [run["batch_size"] for run in figures["runs"]] == list(BATCH_SIZES)
    assert [run["same_tokens"] for run in figures["runs"]] == [PROMPTS] * len(BATCH_SIZES)


def test_rates_are_the_totals_over_the_time(figures):
    baseline = figures["runs"][0]["seconds"]
    for run in figures["runs"]:
        assert run["seconds"] > 0
        assert run["prompts_per_s"] == pytest.approx(PROMPTS / run["seconds"])
        assert run["new_tokens_per_s"] == pytest.approx(PROMPTS * NEW_TOKENS / run["seconds"])
        assert run["speedup"] == pytest.approx(baseline / run["seconds"])
