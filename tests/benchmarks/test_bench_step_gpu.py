"""The one-device training-step benchmark, run as a user runs it (a fresh process) on the CPU runtime with the tiny
model: both stages report positive figures, and the model FLOPs it reports are the useful FLOPs of each stage's
module roles, recomputed here with `module_flops` from the real lengths it prints. Two clips cut into two
micro-batches, so a count of one micro-batch instead of the step would show."""
from pathlib import Path

import pytest
from process_launch import run_benchmark

from megatron_qwen_audio.training.config import MODEL_PRESETS, padded_vocab
from megatron_qwen_audio.training.model_flops import Role, module_flops

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_step_gpu.py"
TIMEOUT_S = 180
# per stage, each module's role as the configs' masks imply; stage 1: the encoder trains and the frozen LLM passes
# gradients back to it; stage 2: the LLM trains and the frozen encoder only runs forward
EXPECTED_ROLES = {
    "stage1_pretrain": {"audio_encoder": Role.TRAINED, "decoder": Role.BACKPROPAGATED,
                        "output_layer": Role.BACKPROPAGATED},
    "stage2_sft": {"audio_encoder": Role.FORWARD, "decoder": Role.TRAINED, "output_layer": Role.TRAINED},
}
FIGURES = ("seconds_per_step", "tokens_per_s", "audio_seconds_per_s", "tflops", "fraction_of_matmul",
           "flops_per_step")


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "figures.json"
    return run_benchmark(SCRIPT, ["--device", "cpu", "--preset", "tiny", "--steps", "2", "--warmup", "1", "--clips",
                                  "2", "--set", "data.loader.max_batch_samples=1"], out, TIMEOUT_S)


def test_both_stages_report_positive_figures(figures):
    assert figures["batch"]["clips"] == 2 and figures["batch"]["micro_batches"] == 2
    assert figures["matmul"]["tflops"] > 0
    assert [stage["stage"] for stage in figures["stages"]] == list(EXPECTED_ROLES)
    for stage in figures["stages"]:
        assert all(stage[name] > 0 for name in FIGURES), stage
        assert stage["planned_memory_gib"] > 0 and stage["peak_memory_gib"] is None  # no device memory on CPU


def test_rates_are_the_step_totals_over_the_step_time(figures):
    batch = figures["batch"]
    for stage in figures["stages"]:
        seconds = stage["seconds_per_step"]
        assert stage["tokens_per_s"] == pytest.approx(batch["positions_per_step"] / seconds)
        assert stage["audio_seconds_per_s"] == pytest.approx(batch["audio_seconds_per_step"] / seconds)
        assert stage["tflops"] == pytest.approx(stage["flops_per_step"] / seconds / 1e12)
        assert stage["fraction_of_matmul"] == pytest.approx(stage["tflops"] / figures["matmul"]["tflops"])


def test_model_flops_are_the_useful_flops_of_each_stages_roles(figures):
    batch, model = figures["batch"], MODEL_PRESETS["tiny"]
    for stage in figures["stages"]:
        roles = EXPECTED_ROLES[stage["stage"]]
        assert stage["flop_roles"] == {name: role.value for name, role in roles.items()}
        expected = sum(module_flops(
            model.audio_encoder, model.hidden_size, model.ffn_hidden_size, padded_vocab(model.vocab_size, 1, 128),
            clip_frames=batch["clip_frames"], sequence_lengths=batch["sequence_lengths"],
            target_tokens=batch["target_tokens_per_step"], decoder_layers=figures["layers"], roles=roles).values())
        assert stage["flops_per_step"] == pytest.approx(expected)
    stage1, stage2 = figures["stages"]
    assert stage1["trainable_parameters"] == stage2["frozen_parameters"]  # one model, two masks
    assert stage1["flops_per_step"] != pytest.approx(stage2["flops_per_step"])
