"""The useful-FLOP count equals what torch.utils.flop_counter measures on the model itself, for a step of each stage:
forward only, stage 1 (encoder trained under the frozen decoder) and stage 2 (decoder trained, encoder frozen).

One row, one clip, no padding, so the measured work is all useful. Attention runs through PyTorch's math kernel,
whose products flop_counter sees (its CPU flash kernel reports none).
"""
from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from megatron_qwen_audio.audio.lengths import audio_span_length
from megatron_qwen_audio.model.audio_encoder import AudioEncoderConfig
from megatron_qwen_audio.training.config import ModelConfig, ParallelConfig
from megatron_qwen_audio.training.model_flops import Role, module_flops

MODEL = ModelConfig(layers=2, hidden_size=64, heads=4, ffn_hidden_size=96, vocab_size=200, vocab_pad_multiple=128,
                    seq_length=256, audio_encoder=AudioEncoderConfig.tiny(d_model=32, layers=2, heads=2,
                                                                          output_dim=64))
CLIP_FRAMES = 97  # odd: the stem's stride and the pooling both round
LENGTH = 80
TARGETS = slice(60, LENGTH)  # where the loss counts

STAGES = {
    "forward only": None,
    "stage 1": {"audio_encoder": Role.TRAINED, "decoder": Role.BACKPROPAGATED, "output_layer": Role.BACKPROPAGATED},
    "stage 2": {"audio_encoder": Role.FORWARD, "decoder": Role.TRAINED, "output_layer": Role.TRAINED},
}


@pytest.fixture(scope="module")
def model():
    from megatron_qwen_audio.model.decoder_spec import transformer_config
    from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel
    from megatron_qwen_audio.runtime.parallel import ensure_single_process

    ensure_single_process()
    torch.manual_seed(0)
    return QwenAudioModel(MODEL, transformer_config(MODEL, ParallelConfig(device="cpu", precision="fp32"), "cpu"))


def _inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    loss_mask = torch.zeros(1, LENGTH)
    loss_mask[0, TARGETS] = 1
    start = 5
    return {
        "tokens": torch.randint(0, MODEL.vocab_size, (1, LENGTH), generator=generator),
        "labels": torch.randint(0, MODEL.vocab_size, (1, LENGTH), generator=generator),
        "loss_mask": loss_mask,
        "mel": torch.randn(MODEL.audio_encoder.n_mels, CLIP_FRAMES, generator=generator),
        "mel_lengths": torch.tensor([CLIP_FRAMES]),
        "audio_spans": torch.tensor([[0, start, start + audio_span_length(CLIP_FRAMES)]]),
    }


def _measured(model, roles: dict[str, Role] | None) -> float:
    for name, parameter in model.named_parameters():
        module = name.split(".")[0]
        module = "decoder" if module == "embedding" else module  # the embedding trains with the decoder
        parameter.requires_grad_(roles is not None and roles[module] is Role.TRAINED)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        losses = model(**_inputs())
        if roles is not None:
            losses.sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


@pytest.mark.parametrize("stage", STAGES)
def test_useful_flops_equal_what_the_model_computes(model, stage):
    roles = STAGES[stage] or {name: Role.FORWARD for name in ("audio_encoder", "decoder", "output_layer")}
    expected = sum(module_flops(
        MODEL.audio_encoder, MODEL.hidden_size, MODEL.ffn_hidden_size, model.padded_vocab_size,
        clip_frames=[CLIP_FRAMES], sequence_lengths=[LENGTH], target_tokens=TARGETS.stop - TARGETS.start,
        decoder_layers=MODEL.layers, roles=roles).values())
    assert _measured(model, STAGES[stage]) == pytest.approx(expected, rel=1e-9)
