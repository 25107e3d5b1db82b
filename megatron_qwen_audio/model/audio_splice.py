"""Writing encoded audio over the `<audio>`..`</audio>` spans of the decoder input.

The tokenizer reserves one position per encoder row for each clip (`<audio>`, one placeholder per audio vector,
`</audio>`), so merging is a row-for-row overwrite: position start + j of row `row` takes row j of the clip's encoded
span (audio bos, vectors, audio eos). The overwrite is an out-of-place `index_copy`, so the decoder input stays
differentiable with respect to both the token embeddings (outside the spans) and the encoder rows (inside them):
stage-1 training back-propagates through a frozen decoder into the encoder this way.
"""
from __future__ import annotations

import torch


def splice_audio(embeddings: torch.Tensor, audio_rows: torch.Tensor, audio_spans: torch.Tensor,
                 span_lengths: list[int]) -> torch.Tensor:
    """embeddings [s, b, h] (megatron's sequence-first layout), audio_rows [sum span_lengths, h] with the clips in
    the order of `audio_spans` [num_clips, 3] = (row, start, end) -> embeddings with every span overwritten.

    A span whose width is not its clip's encoded length, or that lies outside the batch, is a ValueError naming it.
    """
    seq_length, batch, width = embeddings.shape
    spans = audio_spans.tolist()
    if len(spans) != len(span_lengths):
        raise ValueError(f"audio_spans: {len(spans)} spans for {len(span_lengths)} clips; the batch must list one "
                         "(row, start, end) per clip of mel_lengths")
    positions = []
    for clip, ((row, start, end), length) in enumerate(zip(spans, span_lengths)):
        if end - start != length or not (0 <= row < batch and 0 <= start and end <= seq_length):
            raise ValueError(f"audio_spans[{clip}]=({row}, {start}, {end}): clip {clip} encodes to {length} rows and "
                             f"the batch is {batch} rows x {seq_length} tokens; the span must fit both (rebuild the "
                             "batch with collate)")
        positions.append(torch.arange(start, end) * batch + row)
    flat_index = torch.cat(positions).to(embeddings.device)
    merged = embeddings.reshape(seq_length * batch, width).index_copy(0, flat_index, audio_rows.to(embeddings.dtype))
    return merged.view(seq_length, batch, width)
