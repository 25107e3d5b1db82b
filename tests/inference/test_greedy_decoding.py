"""Cached greedy decoding equals the argmax of the training forward pass, recomputed over the whole sequence at every
step (no cache), on a prompt with an audio span; and it stops after a stop token. (Equality with transformers'
`generate` on an exported model is in tests/convert/test_convert_export.py.)"""
from __future__ import annotations

import pytest
import torch

from megatron_qwen_audio.audio.lengths import audio_span_length
from megatron_qwen_audio.inference.greedy import greedy_decode
from megatron_qwen_audio.text.special_tokens import special_tokens
from megatron_qwen_audio.training.config import MODEL_PRESETS, ParallelConfig

FRAMES = 90  # an odd frame count as well: decoding must not care
NEW_TOKENS = 10


@pytest.fixture(scope="module")
def model_and_prompt():
    from megatron_qwen_audio.model.decoder_spec import transformer_config
    from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel
    from megatron_qwen_audio.runtime.parallel import ensure_single_process

    ensure_single_process()
    config = MODEL_PRESETS["tiny"]
    torch.manual_seed(0)
    model = QwenAudioModel(config, transformer_config(config, ParallelConfig(device="cpu", precision="fp32"), "cpu"))
    with torch.no_grad():  # spread the random logits so the argmax is decided by the whole sequence
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    ids, span = special_tokens(), audio_span_length(FRAMES)
    audio = [ids["<audio>"]] + [ids["[[[AUDIO:modality]]]"]] * (span - 2) + [ids["</audio>"]]
    tokens = torch.tensor([11, 12] + audio + [ids["<|startoftranscript|>"], ids["<|en|>"], ids["<|transcribe|>"]])
    prompt = {"mel": torch.randn(80, FRAMES), "mel_lengths": torch.tensor([FRAMES]),
              "audio_spans": torch.tensor([[0, 2, 2 + span]])}
    return model.eval(), tokens, prompt


@torch.no_grad()
def uncached_argmax(model, tokens: torch.Tensor, prompt: dict, steps: int) -> list[int]:
    sequence = tokens.clone()
    for _ in range(steps):
        logits = model(tokens=sequence.unsqueeze(0), **prompt)
        sequence = torch.cat([sequence, logits[0, -1].argmax().reshape(1)])
    return sequence[len(tokens):].tolist()


def test_cached_decoding_equals_the_full_forward_argmax(model_and_prompt):
    model, tokens, prompt = model_and_prompt
    expected = uncached_argmax(model, tokens, prompt, NEW_TOKENS)
    assert len(set(expected)) > 2  # a real continuation
    assert greedy_decode(model, tokens, **prompt, max_new_tokens=NEW_TOKENS) == expected


def test_decoding_stops_after_a_stop_token(model_and_prompt):
    model, tokens, prompt = model_and_prompt
    expected = uncached_argmax(model, tokens, prompt, NEW_TOKENS)
    stop = expected[3]
    decoded = greedy_decode(model, tokens, **prompt, max_new_tokens=NEW_TOKENS, stop_ids={stop})
    assert decoded == expected[: expected.index(stop) + 1]
