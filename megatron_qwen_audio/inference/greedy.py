"""Greedy decoding of one prompt (text and its audio spans) with the combined model in one process (TP=1, PP=1).

The prompt's decoder input (token embeddings with the audio spans overwritten by the encoded clips) is built once and
run through the decoder in one pass that fills megatron-core's key/value cache (`StaticInferenceContext`, the static
batching path of megatron's own inference engine); each next token then costs one position. The core attention
(`model/sdpa_attention.py`) attends causally over the prompt and, for the single new query of a step, to every cached
key, which is what megatron's attention switches to once the cache holds the prompt.
"""
from __future__ import annotations

from collections.abc import Collection

import torch


@torch.no_grad()
def greedy_decode(model, tokens: torch.Tensor, mel: torch.Tensor | None = None,
                  mel_lengths: torch.Tensor | None = None, audio_spans: torch.Tensor | None = None, *,
                  max_new_tokens: int, stop_ids: Collection[int] = ()) -> list[int]:
    """The argmax continuation of `tokens` [L] (one prompt; clips and spans as `QwenAudioModel.forward` takes them,
    spans in row 0), stopping after a token of `stop_ids` (included) or `max_new_tokens` tokens."""
    from megatron.core.inference.contexts import StaticInferenceContext

    if not (model.pre_process and model.post_process):
        raise ValueError("greedy_decode runs the whole model in one process; build it with TP=1 and PP=1")
    total = tokens.shape[0] + max_new_tokens
    cache = StaticInferenceContext(max_batch_size=1, max_sequence_length=total)
    rotary = model.rotary_angles(total)
    step_input = model.decoder_input(tokens.unsqueeze(0), mel, mel_lengths, audio_spans)  # [L, 1, hidden]
    generated: list[int] = []
    while len(generated) < max_new_tokens:
        output = model.decoder(hidden_states=step_input, attention_mask=None, inference_context=cache,
                               rotary_pos_emb=rotary)
        cache.sequence_len_offset += step_input.shape[0]
        next_token = int(model.vocab_logits(output[-1:]).argmax(dim=-1))
        generated.append(next_token)
        if next_token in stop_ids:
            break
        step_input = model.embedding(input_ids=torch.tensor([[next_token]], device=output.device), position_ids=None)
    return generated
