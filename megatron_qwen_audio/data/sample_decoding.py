"""Turn one sample's raw tar members into arrays, checked against what the index promised.

Decoding is the costly step of reading, so it runs only for samples about to be emitted in a batch. A sample whose
members disagree with its index entry means the index and shards are out of step: the error names the sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from megatron_qwen_audio.audio.features import N_MELS
from megatron_qwen_audio.data.shard_format import (
    LABELS_MEMBER,
    TOKENS_MEMBER,
    SampleEntry,
    decode_npy,
    mel_member,
)


@dataclass
class DecodedSample:
    key: str  # "<set name>/<sample key>", unique across the sets of a run
    tokens: np.ndarray  # int [n]: the whole sequence (prompt, audio spans, target)
    labels: np.ndarray  # int [n]: aligned with tokens; IGNORE_INDEX outside the target
    mels: list[np.ndarray]  # float16 [80, T] per clip as stored, in the order the clips appear in the tokens


def decode_sample(members: dict[str, bytes], entry: SampleEntry, key: str) -> DecodedSample:
    """Decode the npy members of a sample described by `entry`; `key` names it in errors."""

    def member(name: str) -> np.ndarray:
        if name not in members:
            raise ValueError(f"{key}: member {name} is missing from the shard; rebuild the shard set")
        return decode_npy(members[name])

    tokens, labels = member(TOKENS_MEMBER), member(LABELS_MEMBER)
    if tokens.shape != (entry.tokens,) or labels.shape != tokens.shape:
        raise ValueError(f"{key}: tokens {tokens.shape} / labels {labels.shape} disagree with the index's "
                         f"{entry.tokens} tokens; rebuild the shard set")
    mels = [member(mel_member(clip, len(entry.frames))) for clip in range(len(entry.frames))]
    for clip, (mel, frames) in enumerate(zip(mels, entry.frames)):
        if mel.shape != (N_MELS, frames):
            raise ValueError(f"{key}: clip {clip} has mel shape {mel.shape}, not ({N_MELS}, {frames}) as the index "
                             "says; rebuild the shard set")
    return DecodedSample(key, tokens, labels, mels)
