"""Greedy decoding of prompts (text and their audio spans) with the combined model in one process (TP=1, PP=1).

The prompts' decoder input (token embeddings with the audio spans overwritten by the encoded clips) is built once and
run through the decoder in one pass that fills megatron-core's key/value cache (`StaticInferenceContext`, the static
batching path of megatron's own inference engine); each next token then costs one position per prompt. The core
attention (`model/sdpa_attention.py`) attends causally over the prompt and, for the single new query of a step, to
every cached key, which is what megatron's attention switches to once the cache holds the prompt.

A batch of prompts of different lengths is left-padded to the longest, so every prompt's next token sits at the same
cache position. Each row then gets what it would get alone: its queries see no padding key (an explicit attention
mask; a padding query sees only itself, so no softmax row is empty), and shifting all of a row's positions by its
padding leaves its attention scores as they were, since RoPE scores depend only on the distance between query and
key. Batching changes only the rounding of the floating-point sums.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Prompt:
    """One prompt as `QwenAudioModel.forward` takes a batch of one: tokens [L], its clips' log-mel [80, sum T] and
    frame counts [clips], and where each clip's span lies, `audio_spans` [clips, 3] = (0, start, end)."""

    tokens: torch.Tensor
    mel: torch.Tensor | None = None
    mel_lengths: torch.Tensor | None = None
    audio_spans: torch.Tensor | None = None


def greedy_decode(model, tokens: torch.Tensor, mel: torch.Tensor | None = None,
                  mel_lengths: torch.Tensor | None = None, audio_spans: torch.Tensor | None = None, *,
                  max_new_tokens: int, stop_ids: Collection[int] = ()) -> list[int]:
    """The argmax continuation of `tokens` [L] (one prompt; clips and spans as `QwenAudioModel.forward` takes them,
    spans in row 0), stopping after a token of `stop_ids` (included) or `max_new_tokens` tokens."""
    prompt = Prompt(tokens, mel, mel_lengths, audio_spans)
    return greedy_decode_batch(model, [prompt], [max_new_tokens], stop_ids)[0]


@torch.no_grad()
def greedy_decode_batch(model, prompts: Sequence[Prompt], max_new_tokens: Sequence[int],
                        stop_ids: Collection[int] = ()) -> list[list[int]]:
    """The argmax continuation of each prompt, decoded together (module doc): prompt i stops after a token of
    `stop_ids` (included) or after `max_new_tokens[i]` tokens."""
    from megatron.core.inference.contexts import StaticInferenceContext

    if not (model.pre_process and model.post_process):
        raise ValueError("greedy decoding runs the whole model in one process; build it with TP=1 and PP=1")
    if len(prompts) != len(max_new_tokens) or not prompts:
        raise ValueError(f"greedy_decode_batch: {len(prompts)} prompts and {len(max_new_tokens)} token budgets; "
                         "give one budget per prompt, and at least one prompt")
    device = prompts[0].tokens.device
    lengths = torch.tensor([prompt.tokens.shape[0] for prompt in prompts])
    pads = (lengths.max() - lengths).to(device)
    total = int(lengths.max()) + max(max_new_tokens)
    padding = torch.arange(total, device=device) < pads.unsqueeze(1)  # [B, total]: True on each row's left padding
    cache = StaticInferenceContext(max_batch_size=len(prompts), max_sequence_length=total)
    rotary = model.rotary_angles(total)
    step_input = _padded_decoder_input(model, prompts, pads)
    mask = _prompt_mask(padding[:, : step_input.shape[0]]) if bool(pads.any()) else None
    generated: list[list[int]] = [[] for _ in prompts]
    live = [budget > 0 for budget in max_new_tokens]
    while any(live):
        output = model.decoder(hidden_states=step_input, attention_mask=mask, inference_context=cache,
                               rotary_pos_emb=rotary)
        cache.sequence_len_offset += step_input.shape[0]
        next_tokens = model.vocab_logits(output[-1:]).argmax(dim=-1)  # [1, B]
        for row, token in enumerate(next_tokens[0].tolist()):
            if live[row]:
                generated[row].append(token)
                live[row] = token not in stop_ids and len(generated[row]) < max_new_tokens[row]
        step_input = model.embedding(input_ids=next_tokens.T, position_ids=None)  # [1, B, hidden]
        if mask is not None:  # the new query sees every real key of its row
            mask = padding[:, None, None, : cache.sequence_len_offset + 1]
    return generated


def _padded_decoder_input(model, prompts: Sequence[Prompt], pads: torch.Tensor) -> torch.Tensor:
    """[longest, B, hidden]: the prompts left-padded (with token 0, masked out) and their audio spans spliced in."""
    longest = max(prompt.tokens.shape[0] for prompt in prompts)
    tokens = torch.zeros(len(prompts), longest, dtype=torch.int64, device=prompts[0].tokens.device)
    mels, mel_lengths, spans = [], [], []
    for row, (prompt, pad) in enumerate(zip(prompts, pads.tolist())):
        tokens[row, pad:] = prompt.tokens
        if prompt.mel_lengths is not None and len(prompt.mel_lengths):
            mels.append(prompt.mel)
            mel_lengths.append(prompt.mel_lengths)
            shift = torch.tensor([row, pad, pad], dtype=torch.int64)
            spans.append(prompt.audio_spans.cpu().reshape(-1, 3) * torch.tensor([0, 1, 1]) + shift)
    if not mels:
        return model.decoder_input(tokens, None, None, None)
    return model.decoder_input(tokens, torch.cat(mels, dim=1), torch.cat(mel_lengths), torch.cat(spans))


def _prompt_mask(padding: torch.Tensor) -> torch.Tensor:
    """bool [B, 1, L, L], True = masked (megatron's convention): later keys and padding keys; a padding query keeps
    its own key, so its softmax row is not empty (its output is never read)."""
    length = padding.shape[1]
    later = torch.ones(length, length, dtype=torch.bool, device=padding.device).triu(1)
    own = torch.eye(length, dtype=torch.bool, device=padding.device)
    return (later | (padding.unsqueeze(1) & ~own)).unsqueeze(1)

