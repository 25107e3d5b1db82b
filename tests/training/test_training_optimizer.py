"""The optimizer over megatron-core's DDP and DistributedOptimizer, through the real code on the CPU runtime.

Two launches of test_training_optimizer_worker.py (one process, then two as PP=2), each a few seconds:
- a model with a frozen part: frozen parameters get no gradient buffer and no Adam state (the moments hold exactly
  the trainable elements), an update with zero gradients scales exactly the decayed parameters by 1 - lr x decay,
  and a training step moves every trainable parameter and no frozen one;
- pipeline stage 1 entirely frozen: no hang, both ranks report the same gradient norm (megatron all-reduces it over
  the model-parallel group, so the frozen rank takes part), stage 0 trains, stage 1 holds no state and stays put.
"""
from pathlib import Path

import pytest
import torch
from process_launch import torchrun
from torch import nn

from megatron_qwen_audio.training.optimizer import no_weight_decay

WORKER = Path(__file__).with_name("test_training_optimizer_worker.py")
LAUNCH_TIMEOUT_S = 180


def _launch(check: str, processes: int, out: Path) -> list[dict]:
    torchrun(processes, [str(WORKER), "--check", check, "--out", str(out)], check, LAUNCH_TIMEOUT_S)
    return [torch.load(out / f"{check}-rank{rank}.pt", weights_only=False) for rank in range(processes)]


@pytest.fixture(scope="module")
def frozen_part(tmp_path_factory) -> dict:
    return _launch("frozen_part", 1, tmp_path_factory.mktemp("frozen_part"))[0]


@pytest.fixture(scope="module")
def frozen_stage(tmp_path_factory) -> list[dict]:
    return _launch("frozen_stage", 2, tmp_path_factory.mktemp("frozen_stage"))


def test_weight_decay_rule_spares_norms_and_biases():
    linear, norm, conv, embedding = nn.Linear(4, 4), nn.LayerNorm(4), nn.Conv1d(2, 4, 3), nn.Embedding(5, 4)
    assert not no_weight_decay(linear.weight, "decoder.layers.0.mlp.linear_fc1.weight")
    assert no_weight_decay(linear.bias, "decoder.layers.0.self_attention.linear_qkv.bias")
    assert no_weight_decay(norm.weight, "decoder.final_layernorm.weight")
    assert no_weight_decay(norm.bias, "audio_encoder.ln_post.bias")
    assert not no_weight_decay(conv.weight, "audio_encoder.conv1.weight")
    assert no_weight_decay(conv.bias, "audio_encoder.conv1.bias")
    assert not no_weight_decay(embedding.weight, "embedding.word_embeddings.weight")


def test_frozen_parameters_get_no_gradient_buffer(frozen_part):
    trainable = frozen_part["trainable"]
    assert trainable and len(trainable) < len(frozen_part["numel"])  # the mask left both kinds
    assert frozen_part["with_main_grad"] == trainable
    assert frozen_part["in_grad_buffers"] == trainable


def test_optimizer_state_holds_exactly_the_trainable_elements(frozen_part):
    trainable_elements = sum(frozen_part["numel"][name] for name in frozen_part["trainable"])
    all_elements = sum(frozen_part["numel"].values())
    assert trainable_elements < all_elements
    assert frozen_part["state_elements"] == {"exp_avg": trainable_elements, "exp_avg_sq": trainable_elements}


def test_zero_gradient_update_decays_only_trainable_matrices(frozen_part):
    """With zero gradients Adam's update is 0, so what moves is weight decay: p * (1 - lr x weight_decay)."""
    assert frozen_part["zero_grad_norm"] == 0.0
    decay_factor = 1.0 - frozen_part["lr"] * frozen_part["weight_decay"]
    assert decay_factor < 1.0 - 1e-4
    decayed = set()
    for name, before in frozen_part["initial"].items():
        after = frozen_part["after_decay_only"][name]
        assert before.abs().min() > 0 or frozen_part["ndim"][name] > 1, name  # a decay would show on every element
        if name in frozen_part["trainable"] and frozen_part["ndim"][name] > 1:
            torch.testing.assert_close(after, before * decay_factor, rtol=1e-6, atol=0)
            decayed.add(name)
        else:
            assert torch.equal(after, before), name
    assert any(name.endswith(".bias") for name in frozen_part["trainable"])
    assert "output_layer.weight" in decayed


def test_training_step_moves_trainable_parameters_only(frozen_part):
    assert frozen_part["grad_norm"] > 0
    for name, before in frozen_part["after_decay_only"].items():
        moved = not torch.equal(frozen_part["after_training_step"][name], before)
        assert moved == (name in frozen_part["trainable"]), name


def test_fully_frozen_pipeline_stage_joins_the_gradient_norm(frozen_stage):
    first, second = frozen_stage
    assert first["layout"].pipeline_parallel_rank == 0 and second["layout"].pipeline_parallel_rank == 1
    assert second["own_grad_norms"] == [0.0, 0.0]
    for reported_first, reported_second, own in zip(first["grad_norms"], second["grad_norms"],
                                                    first["own_grad_norms"]):
        assert reported_first == reported_second
        assert reported_first == pytest.approx(own, rel=1e-6)  # stage 0 holds the whole norm


def test_other_stage_trains_while_the_frozen_stage_stays(frozen_stage):
    first, second = frozen_stage
    assert second["state_elements"] == {"exp_avg": 0, "exp_avg_sq": 0}
    for name, before in second["initial"].items():
        assert torch.equal(second["final"][name], before), name
    trainable_elements = sum(before.numel() for before in first["initial"].values())
    assert first["state_elements"] == {"exp_avg": trainable_elements, "exp_avg_sq": trainable_elements}
    for name, before in first["initial"].items():
        assert not torch.equal(first["final"][name], before), name
