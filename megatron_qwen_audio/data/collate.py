"""Collation: decoded samples -> the batch the model takes.

Rows are whole samples, right-padded, or with `pack=True` every sample of the batch one after the other in a single
row without padding (sequence packing: no position is spent on padding; `cu_seqlens` marks where each sample starts,
the model keeps attention inside each sample and restarts RoPE positions at each start). The input drops each sample's
last token, which is only ever a target (Megatron's GPT convention), so `labels[b, i]` is the token that must follow
`tokens[b, i]`; a packed row therefore never asks a sample to predict the next sample's first token. Clips are packed
along time for the encoder, and `audio_spans` says where each clip's encoder output goes in the token sequence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from megatron_qwen_audio.audio.features import N_MELS
from megatron_qwen_audio.audio.lengths import HOP_LENGTH, SAMPLE_RATE, audio_span_length
from megatron_qwen_audio.data.sample_decoding import DecodedSample
from megatron_qwen_audio.data.shard_format import IGNORE_INDEX
from megatron_qwen_audio.text.special_tokens import AUDIO_END, AUDIO_START, special_tokens


@dataclass
class AudioTextBatch:
    tokens: torch.Tensor  # int64 [B, L]: input ids (each sample without its last token), right-padded with the pad id;
    # packed: [1, sum of the samples' lengths], no padding
    labels: torch.Tensor  # int64 [B, L]: the next token after tokens[b, i]; the pad id where it does not count
    loss_mask: torch.Tensor  # float32 [B, L]: 1 where labels[b, i] counts in the loss (target positions), else 0
    position_ids: torch.Tensor  # int64 [B, L]: each sample's positions from 0 (0..L-1 per row when unpacked)
    cu_seqlens: torch.Tensor | None  # int32 [num_samples + 1]: sample i holds positions cu_seqlens[i]:cu_seqlens[i+1]
    # of the single packed row; None when every row is one sample
    mel: torch.Tensor  # float16 [80, sum T] (as stored; half the bytes from workers and to the GPU): every clip's
    # log-mel packed along time, rows in order, clips in order
    mel_lengths: torch.Tensor  # int64 [num_clips]: T of each packed clip
    audio_spans: torch.Tensor  # int64 [num_clips, 3]: (row, start, end); tokens[row, start:end] is <audio>..</audio>
    sequence_lengths: list[int]  # input positions of each sample without padding (useful-FLOP counts)
    keys: list[str]  # "<set name>/<sample key>" of each sample, in order
    tasks: list[str]  # task tag of each sample (index.json SampleEntry.task, e.g. "asr"): per-task losses group by it
    num_samples: int  # samples (B when unpacked)
    num_target_tokens: int  # loss_mask.sum(): positions that count in the loss
    audio_seconds: float  # audio in the batch (mel frames x 10 ms)


def audio_spans(tokens: np.ndarray, clip_frames: list[int], key: str) -> list[tuple[int, int]]:
    """(start, end) of each clip's span in `tokens`, checked against the span length the clip's frames imply."""
    start_id, end_id = special_tokens()[AUDIO_START], special_tokens()[AUDIO_END]
    starts = np.flatnonzero(tokens == start_id)
    if len(starts) != len(clip_frames):
        raise ValueError(f"{key}: {len(starts)} audio span(s) in the input tokens but {len(clip_frames)} clip(s); "
                         "rebuild the shard set")
    spans = []
    for start, frames in zip(starts.tolist(), clip_frames):
        end = start + audio_span_length(frames)
        if end > len(tokens) or tokens[end - 1] != end_id:
            raise ValueError(f"{key}: the audio span at token {start} does not end where {frames} mel frames put "
                             f"it (token {end - 1}); rebuild the shard set")
        spans.append((start, end))
    return spans


def collate(samples: list[DecodedSample], pad_token_id: int, tasks: list[str], pack: bool = False) -> AudioTextBatch:
    """Pad, shift and pack decoded samples into one batch (text-only samples and clip-free batches included); with
    `pack`, one row of all the samples back to back (module doc).

    `tasks` are the samples' task tags, from the shard index (the decoded members do not carry them), in order.
    """
    assert len(tasks) == len(samples), "one task tag per sample"
    lengths = [len(sample.tokens) - 1 for sample in samples]
    # where each sample starts in its row: back to back when packed, at 0 of its own row otherwise
    starts = np.concatenate([[0], np.cumsum(lengths)]) if pack else np.zeros(len(samples) + 1, dtype=np.int64)
    shape = (1, int(starts[-1])) if pack else (len(samples), max(lengths))
    tokens = np.full(shape, pad_token_id, dtype=np.int64)
    labels = np.full(shape, IGNORE_INDEX, dtype=np.int64)
    spans = []
    for index, (sample, start, length) in enumerate(zip(samples, starts.tolist(), lengths)):
        row = 0 if pack else index
        inputs = sample.tokens[:-1]
        tokens[row, start: start + length] = inputs
        labels[row, start: start + length] = sample.labels[1:]
        clip_frames = [mel.shape[1] for mel in sample.mels]
        spans += [(row, start + span_start, start + span_end)
                  for span_start, span_end in audio_spans(inputs, clip_frames, sample.key)]
    if pack:  # each sample counts from 0
        positions = np.concatenate([np.arange(length) for length in lengths])[None]
    else:
        positions = np.broadcast_to(np.arange(shape[1]), shape).copy()
    loss_mask = labels != IGNORE_INDEX
    labels[~loss_mask] = pad_token_id
    mels = [mel for sample in samples for mel in sample.mels]
    mel_lengths = [mel.shape[1] for mel in mels]
    return AudioTextBatch(
        tokens=torch.from_numpy(tokens),
        labels=torch.from_numpy(labels),
        loss_mask=torch.from_numpy(loss_mask.astype(np.float32)),
        position_ids=torch.from_numpy(positions),
        cu_seqlens=torch.from_numpy(starts.astype(np.int32)) if pack else None,
        mel=torch.from_numpy(np.concatenate(mels, axis=1) if mels else np.zeros((N_MELS, 0), np.float16)),
        mel_lengths=torch.tensor(mel_lengths, dtype=torch.int64),
        audio_spans=torch.tensor(spans, dtype=torch.int64).reshape(-1, 3),
        sequence_lengths=lengths,
        keys=[sample.key for sample in samples],
        tasks=list(tasks),
        num_samples=len(samples),
        num_target_tokens=int(loss_mask.sum()),
        audio_seconds=sum(mel_lengths) * HOP_LENGTH / SAMPLE_RATE,
    )
