"""The HF-versus-project throughput benchmark, run as a user runs it (a fresh process) on the CPU with the tiny model.
Its timings mean nothing here; what must hold on any device is checked: both sides train the same modules of the
same model on the same samples, the HF side computes what its recipe pads to (30 s of frames per clip, the longest
text per row) while this project's packed batches compute no padding position, the useful FLOPs are those of the
stage's roles over the real lengths, and every rate and ratio is the step totals over the step times."""
from pathlib import Path

import pytest
from process_launch import run_benchmark

from megatron_qwen_audio.audio.lengths import audio_span_length
from megatron_qwen_audio.training.config import MODEL_PRESETS, padded_vocab
from megatron_qwen_audio.training.model_flops import Role, module_flops

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_train_gpu.py"
TIMEOUT_S = 240
HF_TRAINED = {"stage1_pretrain": ["audio_encoder"], "stage2_sft": ["embedding", "decoder", "output_layer"]}


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "figures.json"
    return run_benchmark(SCRIPT, ["--device", "cpu", "--preset", "tiny"], out, TIMEOUT_S)


def test_both_sides_train_the_same_modules_of_the_same_model(figures):
    assert [stage["stage"] for stage in figures["stages"]] == list(HF_TRAINED)
    model = MODEL_PRESETS["tiny"]
    for stage in figures["stages"]:
        assert stage["hf_trained_modules"] == HF_TRAINED[stage["stage"]]
        hf, ours = stage["hf"]["trainable_parameters"], stage["ours"]["trainable_parameters"]
        # the one difference: this project's learned audio bos/eos rows, which Qwen2-Audio takes from its vocabulary
        audio_bos_eos = 2 * model.audio_encoder.output_dim if stage["stage"] == "stage1_pretrain" else 0
        assert ours - hf == audio_bos_eos and hf > 0
        for side in ("hf", "ours"):  # both start near ln(vocabulary) on random weights
            assert abs(stage[side]["last_loss"] - 11.96) < 0.5


def test_hf_computes_its_padding_and_packed_batches_compute_none(figures):
    samples = figures["samples"]
    clips, lengths = samples["clips"], samples["sequence_lengths"]
    assert clips >= 3 and len(set(samples["clip_frames"])) == clips  # different lengths: padding to pay for
    assert figures["ours_decoder_positions_computed"] == sum(lengths)
    for stage in figures["stages"]:
        assert stage["hf"]["encoder_frames_computed"] == clips * 1500  # 30 s after the stride-2 stem
        assert stage["hf"]["decoder_positions_computed"] == clips * (max(lengths) + 1) > sum(lengths)
    assert samples["text_tokens"] == sum(length + 1 - audio_span_length(frames)
                                         for length, frames in zip(lengths, samples["clip_frames"]))


def test_useful_flops_are_the_stage_roles_over_the_real_lengths(figures):
    samples, model = figures["samples"], MODEL_PRESETS["tiny"]
    for stage in figures["stages"]:
        roles = {name: Role(role) for name, role in stage["flop_roles"].items()}
        expected = sum(module_flops(
            model.audio_encoder, model.hidden_size, model.ffn_hidden_size, padded_vocab(model.vocab_size, 1, 128),
            clip_frames=samples["clip_frames"], sequence_lengths=samples["sequence_lengths"],
            target_tokens=samples["target_tokens"], decoder_layers=figures["layers"], roles=roles).values())
        assert stage["flops_per_step"] == pytest.approx(expected)


def test_rates_and_ratio_are_the_step_totals_over_the_step_times(figures):
    samples, matmul = figures["samples"], figures["matmul"]["tflops"]
    for stage in figures["stages"]:
        for side in ("hf", "ours"):
            seconds = stage[side]["seconds_per_step"]
            assert stage[side]["audio_seconds_per_s"] == pytest.approx(samples["audio_seconds"] / seconds)
            assert stage[side]["text_tokens_per_s"] == pytest.approx(samples["text_tokens"] / seconds)
            assert stage[side]["tflops"] == pytest.approx(stage["flops_per_step"] / seconds / 1e12)
            assert stage[side]["fraction_of_matmul"] == pytest.approx(stage[side]["tflops"] / matmul)
        assert stage["ratio"] == pytest.approx(stage["hf"]["seconds_per_step"] / stage["ours"]["seconds_per_step"])
