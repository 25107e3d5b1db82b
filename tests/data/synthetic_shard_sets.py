"""Synthetic shard sets for the loader tests, written like the shard builder writes them (webdataset.TarWriter +
ShardSetIndex) but without audio files or a tokenizer, so the loader is tested on its own.

Each sample gets a random prompt, one `<audio>`..`</audio>` span per clip (sized by `audio_span_length`), a tag and a
random target ending in `<|endoftext|>`; labels are IGNORE_INDEX outside the target. Every 5th sample is text-only and
every 7th has two clips. Mels are random float16, so any mix-up of samples shows in the values. Sets of index metadata
alone (`in_memory_shard_set`) let the epoch plan be tested on shapes too large to write as tars.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import webdataset

from megatron_qwen_audio.audio import audio_span_length
from megatron_qwen_audio.data.shard_format import (
    IGNORE_INDEX,
    LABELS_MEMBER,
    META_MEMBER,
    TOKENS_MEMBER,
    SampleEntry,
    ShardEntry,
    ShardSetIndex,
    encode_npy,
    mel_member,
    sample_key,
    shard_name,
)
from megatron_qwen_audio.data.shard_sets import DEFAULT_URL_TEMPLATE, ShardSet
from megatron_qwen_audio.text.special_tokens import AUDIO_END, AUDIO_PAD, AUDIO_START, ENDOFTEXT, special_tokens

SET_A_SHARDS = [12, 9, 15, 10, 11, 8, 13, 7]  # samples per shard of the tests' set "a"
SET_B_SHARDS = [10, 14, 9, 11, 6]  # and of set "b"

TOKEN_IDS = special_tokens()
TEXT_VOCAB = 151643  # ordinary BPE ids lie below the first special token


def _clip_count(line: int) -> int:
    return 0 if line % 5 == 0 else 2 if line % 7 == 0 else 1


def synthetic_sample(line: int, rng: np.random.Generator, frame_range: tuple[int, int]) -> tuple[dict, SampleEntry]:
    """The tar members and index entry of the sample of manifest line `line`."""
    frames = [int(rng.integers(*frame_range)) for _ in range(_clip_count(line))]
    tokens = list(rng.integers(0, TEXT_VOCAB, size=int(rng.integers(2, 6))))
    for clip_frames in frames:
        tokens += [TOKEN_IDS[AUDIO_START], *[TOKEN_IDS[AUDIO_PAD]] * (audio_span_length(clip_frames) - 2),
                   TOKEN_IDS[AUDIO_END], *rng.integers(0, TEXT_VOCAB, size=2)]
    tokens.append(TOKEN_IDS["<|startoftranscript|>"])
    target = [*rng.integers(0, TEXT_VOCAB, size=int(rng.integers(1, 20))), TOKEN_IDS[ENDOFTEXT]]
    labels = [IGNORE_INDEX] * len(tokens) + target
    tokens += target
    members = {
        "__key__": sample_key(line),
        TOKENS_MEMBER: encode_npy(np.array(tokens, dtype=np.int32)),
        LABELS_MEMBER: encode_npy(np.array(labels, dtype=np.int32)),
        META_MEMBER: b'{"line": %d}' % line,
    }
    for clip, clip_frames in enumerate(frames):
        members[mel_member(clip, len(frames))] = encode_npy(rng.standard_normal((80, clip_frames)).astype(np.float16))
    return members, SampleEntry(key=sample_key(line), frames=frames, tokens=len(tokens), task="asr", audio_lang="en",
                                text_lang="en")


def write_shard_set(
    directory: Path,
    shard_sizes: Sequence[int],
    seed: int = 0,
    tokenizer_fingerprint: str = "synthetic-tokenizer",
    frame_range: tuple[int, int] = (40, 400),
) -> ShardSetIndex:
    """Write shards of `shard_sizes` samples and index.json into `directory`; returns the index."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shards, line = [], 1
    for shard_index, size in enumerate(shard_sizes):
        entry = ShardEntry(name=shard_name(shard_index), first_line=line, last_line=line + size - 1)
        with webdataset.TarWriter(str(directory / entry.name), encoder=False, mtime=0) as tar:
            for _ in range(size):
                members, sample = synthetic_sample(line, rng, frame_range)
                tar.write(members)
                entry.samples.append(sample)
                line += 1
        shards.append(entry)
    index = _index(shards, tokenizer_fingerprint)
    index.write(directory)
    return index


def in_memory_shard_set(
    shard_sizes: Sequence[int], seed: int = 0, frame_range: tuple[int, int] = (40, 400)
) -> ShardSet:
    """A set of index metadata only, without tars, lengths drawn like `synthetic_sample`'s: enough to plan epochs
    over more samples than a test could write."""
    rng = np.random.default_rng(seed)
    shards, line = [], 1
    for shard_index, size in enumerate(shard_sizes):
        entry = ShardEntry(name=shard_name(shard_index), first_line=line, last_line=line + size - 1)
        for _ in range(size):
            frames = [int(rng.integers(*frame_range)) for _ in range(_clip_count(line))]
            tokens = int(rng.integers(3, 26)) + sum(audio_span_length(clip_frames) + 2 for clip_frames in frames)
            entry.samples.append(SampleEntry(key=sample_key(line), frames=frames, tokens=tokens, task="asr"))
            line += 1
        shards.append(entry)
    return ShardSet("memory", weight=1.0, root="memory", url_template=DEFAULT_URL_TEMPLATE,
                    index=_index(shards, "synthetic-tokenizer"))


def _index(shards: list[ShardEntry], tokenizer_fingerprint: str) -> ShardSetIndex:
    lines = sum(len(shard.samples) for shard in shards)
    return ShardSetIndex(shards=shards, manifest_lines=lines, rejected=0, hours=0.0, counts={"task": {"asr": lines}},
                         tokenizer_fingerprint=tokenizer_fingerprint, builder_version="synthetic")
