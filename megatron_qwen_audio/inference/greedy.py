"""Greedy decoding of one prompt (text and its audio spans) with the combined model in one process (TP=1, PP=1).

The prompt's decoder input (token embeddings with the audio spans overwritten by the encoded clips) is built once;
each step appends the chosen token's embedding and runs the decoder over the whole sequence again. That costs
O(steps x length^2) attention but needs nothing from the model beyond its training forward, which makes it the
reference any faster decoder must reproduce token for token.
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
    if not (model.pre_process and model.post_process):
        raise ValueError("greedy_decode runs the whole model in one process; build it with TP=1 and PP=1")
    hidden = model.decoder_input(tokens.unsqueeze(0), mel, mel_lengths, audio_spans)  # [L, 1, hidden]
    generated: list[int] = []
    while len(generated) < max_new_tokens:
        output = model.decoder(hidden_states=hidden, attention_mask=None,
                               rotary_pos_emb=model.rotary_angles(hidden.shape[0]))
        next_token = int(model.vocab_logits(output[-1:]).argmax(dim=-1))
        generated.append(next_token)
        if next_token in stop_ids:
            break
        embedding = model.embedding(input_ids=torch.tensor([[next_token]], device=hidden.device), position_ids=None)
        hidden = torch.cat([hidden, embedding])
    return generated
