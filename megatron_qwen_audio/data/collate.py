"""Collation: decoded samples -> the batch the model takes.

Rows are whole samples, right-padded. The input drops each sample's last token, which is only ever a target
(Megatron's GPT convention), so `labels[b, i]` is the token that must follow `tokens[b, i]`. Clips are packed along
time for the encoder, and `audio_spans` says where each clip's encoder output goes in the token sequence.
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
    tokens: torch.Tensor  # int64 [B, L]: input ids (each sample without its last token), right-padded with the pad id
    labels: torch.Tensor  # int64 [B, L]: the next token after tokens[b, i]; the pad id where it does not count
    loss_mask: torch.Tensor  # float32 [B, L]: 1 where labels[b, i] counts in the loss (target positions), else 0
    position_ids: torch.Tensor  # int64 [B, L]: 0..L-1 in every row (one sample per row)
    mel: torch.Tensor  # float16 [80, sum T] (as stored; half the bytes from workers and to the GPU): every clip's
    # log-mel packed along time, rows in order, clips in order
    mel_lengths: torch.Tensor  # int64 [num_clips]: T of each packed clip
    audio_spans: torch.Tensor  # int64 [num_clips, 3]: (row, start, end); tokens[row, start:end] is <audio>..</audio>
    sequence_lengths: list[int]  # input positions of each row without its padding (useful-FLOP counts)
    keys: list[str]  # "<set name>/<sample key>" of each row
    tasks: list[str]  # task tag of each row (index.json SampleEntry.task, e.g. "asr"): per-task losses group by it
    num_samples: int  # B
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


def collate(samples: list[DecodedSample], pad_token_id: int, tasks: list[str]) -> AudioTextBatch:
    """Pad, shift and pack decoded samples into one batch (text-only samples and clip-free batches included).

    `tasks` are the samples' task tags, from the shard index (the decoded members do not carry them), row by row.
    """
    assert len(tasks) == len(samples), "one task tag per sample"
    length = max(len(sample.tokens) for sample in samples) - 1
    tokens = np.full((len(samples), length), pad_token_id, dtype=np.int64)
    labels = np.full((len(samples), length), IGNORE_INDEX, dtype=np.int64)
    spans = []
    for row, sample in enumerate(samples):
        inputs = sample.tokens[:-1]
        tokens[row, : len(inputs)] = inputs
        labels[row, : len(inputs)] = sample.labels[1:]
        clip_frames = [mel.shape[1] for mel in sample.mels]
        spans += [(row, start, end) for start, end in audio_spans(inputs, clip_frames, sample.key)]
    loss_mask = labels != IGNORE_INDEX
    labels[~loss_mask] = pad_token_id
    mels = [mel for sample in samples for mel in sample.mels]
    mel_lengths = [mel.shape[1] for mel in mels]
    return AudioTextBatch(
        tokens=torch.from_numpy(tokens),
        labels=torch.from_numpy(labels),
        loss_mask=torch.from_numpy(loss_mask.astype(np.float32)),
        position_ids=torch.arange(length, dtype=torch.int64).expand(len(samples), length).contiguous(),
        mel=torch.from_numpy(np.concatenate(mels, axis=1) if mels else np.zeros((N_MELS, 0), np.float16)),
        mel_lengths=torch.tensor(mel_lengths, dtype=torch.int64),
        audio_spans=torch.tensor(spans, dtype=torch.int64).reshape(-1, 3),
        sequence_lengths=[len(sample.tokens) - 1 for sample in samples],
        keys=[sample.key for sample in samples],
        tasks=list(tasks),
        num_samples=len(samples),
        num_target_tokens=int(loss_mask.sum()),
        audio_seconds=sum(mel_lengths) * HOP_LENGTH / SAMPLE_RATE,
    )
