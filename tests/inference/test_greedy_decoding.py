"""Cached greedy decoding equals the argmax of the training forward pass, recomputed over the whole sequence at every
step (no cache), on a prompt with an audio span; it stops after a stop token; and prompts of different lengths,
clips and budgets decoded together (left-padded) each get what they get alone. (Equality with transformers'
`generate` on an exported model is in tests/convert/test_convert_export.py.)"""
from __future__ import annotations

import pytest
import torch

from megatron_qwen_audio.audio.lengths import audio_span_length
from megatron_qwen_audio.inference.greedy import Prompt, greedy_decode, greedy_decode_batch
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
    prompt = audio_prompt([11, 12], [FRAMES])
    return model.eval(), prompt.tokens, {"mel": prompt.mel, "mel_lengths": prompt.mel_lengths,
                                         "audio_spans": prompt.audio_spans}


def audio_prompt(text_before: list[int], clip_frames: list[int]) -> Prompt:
    """`text_before`, then one audio span per clip (random log-mel), then the transcription tags."""
    ids = special_tokens()
    tokens, spans = list(text_before), []
    for frames in clip_frames:
        span = audio_span_length(frames)
        spans.append((0, len(tokens), len(tokens) + span))
        tokens += [ids["<audio>"]] + [ids["[[[AUDIO:modality]]]"]] * (span - 2) + [ids["</audio>"]]
    tokens += [ids["<|startoftranscript|>"], ids["<|en|>"], ids["<|transcribe|>"]]
    return Prompt(torch.tensor(tokens), torch.randn(80, sum(clip_frames)), torch.tensor(clip_frames),
                  torch.tensor(spans).reshape(-1, 3))


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


def test_prompts_decoded_together_each_get_what_they_get_alone(model_and_prompt):
    model, tokens, prompt = model_and_prompt
    prompts = [Prompt(tokens, **prompt),
               Prompt(torch.tensor([21, 22, 23, 24, 25])),  # text only, far shorter: most of its row is padding
               audio_prompt([31], [50, 131]),  # two clips, the longest prompt
               audio_prompt([41, 42, 43], [64])]
    budgets = [NEW_TOKENS, 7, NEW_TOKENS, 1]
    alone = [greedy_decode(model, p.tokens, p.mel, p.mel_lengths, p.audio_spans, max_new_tokens=budget)
             for p, budget in zip(prompts, budgets)]
    assert len({tuple(ids) for ids in alone}) == len(prompts)  # the prompts decode differently
    assert greedy_decode_batch(model, prompts, budgets) == alone
    stop = alone[2][4]  # a token the longest prompt emits mid-way: that row stops, the others go on
    stopped = [ids[: ids.index(stop) + 1] if stop in ids else ids for ids in alone]
    assert greedy_decode_batch(model, prompts, budgets, stop_ids={stop}) == stopped
