"""Activation recompute (`parallel.recompute`) changes memory, never the numbers: one step's loss and every gradient
with selective recompute of each megatron module and with full recompute equal those of a run that keeps every
activation, and the forward pass saves fewer bytes for the backward pass (so recompute did happen). The batch is a
packed row with a clip, so recompute is also checked through the packed attention path."""
from __future__ import annotations

import pytest
import torch
from qwen_audio_model_fixtures import MODEL, packed_micro_batches

from megatron_qwen_audio.training.config import ParallelConfig

SETTINGS = {
    "selective mlp": {"recompute": "selective", "recompute_modules": ("mlp",)},
    "selective mlp, core_attn": {"recompute": "selective", "recompute_modules": ("mlp", "core_attn")},
    "full": {"recompute": "full"},
}


def _step(recompute: dict, state: dict | None) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict, int]:
    """Loss, gradients, weights and the bytes autograd saved in the forward pass, of one step on a packed row."""
    from megatron_qwen_audio.model.decoder_spec import transformer_config
    from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel

    parallel = ParallelConfig(device="cpu", precision="fp32", **recompute)
    model = QwenAudioModel(MODEL, transformer_config(MODEL, parallel, "cpu"))
    if state is not None:
        model.load_state_dict(state)
    batch = packed_micro_batches()[0]
    saved = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(**batch).sum()
    loss.backward()
    grads = {name: parameter.grad.clone() for name, parameter in model.named_parameters()}
    return loss.detach(), grads, model.state_dict(), sum(saved)


@pytest.fixture(scope="module")
def kept_activations():
    from megatron_qwen_audio.runtime.parallel import ensure_single_process

    ensure_single_process()
    torch.manual_seed(0)
    return _step({}, None)


@pytest.mark.parametrize("setting", SETTINGS)
def test_recompute_gives_the_loss_and_gradients_of_kept_activations(kept_activations, setting):
    loss, grads, state, saved_bytes = kept_activations
    recomputed_loss, recomputed_grads, _, recompute_saved_bytes = _step(SETTINGS[setting], state)
    assert recompute_saved_bytes < saved_bytes
    assert recomputed_loss == loss
    assert recomputed_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(recomputed_grads[name], grad, rtol=1e-6, atol=1e-7, msg=name)
