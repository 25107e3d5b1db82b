"""One manifest row -> the arrays of one shard sample (log-mels, token ids, labels, metadata), or a reject reason.

Everything that can be wrong with a row's content is found here and reported as `SampleRejected` with a reason the
user can act on, so the builder can record it and move on: a bad row never stops a build.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data_prep.manifest import ManifestRow
from megatron_qwen_audio.audio.decode import AudioDecodeError, load_audio, probe_audio
from megatron_qwen_audio.audio.features import log_mel
from megatron_qwen_audio.audio.lengths import MAX_SECONDS, SAMPLE_RATE
from megatron_qwen_audio.data.shard_format import (
    LABELS_MEMBER,
    META_MEMBER,
    TOKENS_MEMBER,
    SampleEntry,
    encode_npy,
    mel_member,
    sample_key,
)
from megatron_qwen_audio.text.tags import TagFormatError, TaggedSequence, build_sequence, prompt_tags
from megatron_qwen_audio.text.tokenizer import TextTokenizer


class SampleRejected(Exception):
    """The row cannot become a sample; `reason` says why and what to do."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class EncodedSample:
    row: ManifestRow
    mels: list[np.ndarray]  # float16 [80, T] per clip, unpadded
    seconds: list[float]  # per clip, after resampling to 16 kHz
    sequence: TaggedSequence

    @property
    def key(self) -> str:
        return sample_key(self.row.line)

    def tar_members(self) -> dict[str, bytes | str]:
        """The webdataset sample: `__key__` plus member name -> bytes."""
        members: dict[str, bytes | str] = {"__key__": self.key}
        for index, mel in enumerate(self.mels):
            members[mel_member(index, len(self.mels))] = encode_npy(mel)
        members[TOKENS_MEMBER] = encode_npy(self.sequence.input_ids)
        members[LABELS_MEMBER] = encode_npy(self.sequence.labels)
        members[META_MEMBER] = json.dumps(self.metadata(), ensure_ascii=False).encode("utf-8")
        return members

    def metadata(self) -> dict:
        """`KEY.json`: the manifest line and row as written (ids, reference texts for evaluation) and clip lengths."""
        return {"line": self.row.line, "seconds": self.seconds, "sample": self.row.sample}

    def index_entry(self) -> SampleEntry:
        sample = self.row.sample
        return SampleEntry(
            key=self.key,
            frames=[mel.shape[1] for mel in self.mels],
            tokens=len(self.sequence.input_ids),
            task=sample["task"],
            audio_lang=sample.get("audio_lang"),
            text_lang=sample.get("text_lang"),
            tags=prompt_tags(self.sequence),
        )


def encode_row(row: ManifestRow, tokenizer: TextTokenizer, max_tokens: int) -> EncodedSample:
    """Decode and featurize the row's clips, build its token sequence, and check its length.

    Raises SampleRejected for missing, unreadable, empty or over-long audio, content the tag builder refuses
    (unknown task or language, empty target, timestamps outside the audio, ...) and sequences over `max_tokens`.
    """
    segment = clip_segment(row.sample)
    clips = [_clip_features(index, path, segment if index == 0 else None)
             for index, path in enumerate(row.audio_paths)]
    mels = [mel for mel, _ in clips]
    seconds = [clip_seconds for _, clip_seconds in clips]
    try:
        sequence = build_sequence(row.sample, [mel.shape[1] for mel in mels], seconds, tokenizer)
    except TagFormatError as error:
        raise SampleRejected(str(error)) from None
    if len(sequence.input_ids) > max_tokens:
        raise SampleRejected(
            f"sequence is {len(sequence.input_ids)} tokens (audio spans included), over --max-tokens {max_tokens}; "
            "shorten the text or split the sample"
        )
    return EncodedSample(row=row, mels=mels, seconds=seconds, sequence=sequence)


def clip_segment(sample: dict) -> tuple[float, float] | None:
    """(start, end) in seconds of the top-level clip when the row cuts it from a longer file (`start`/`end`), else
    None; SampleRejected when only one is given or they are not increasing non-negative numbers."""
    if "start" not in sample and "end" not in sample:
        return None
    if "audio" not in sample:
        raise SampleRejected("start/end: only a top-level 'audio' clip can be cut; remove them or add 'audio'")
    bounds = [sample.get(name) for name in ("start", "end")]
    if any(isinstance(bound, bool) or not isinstance(bound, (int, float)) for bound in bounds):
        raise SampleRejected(f"start/end: expected both as seconds, got start={bounds[0]!r} end={bounds[1]!r}")
    start, end = (float(bound) for bound in bounds)
    if not 0 <= start < end:
        raise SampleRejected(f"start/end: {start} to {end} s is not a range within the file; need 0 <= start < end")
    return start, end


def _clip_features(index: int, path: Path, segment: tuple[float, float] | None) -> tuple[np.ndarray, float]:
    """float16 log-mel [80, T] and length in seconds of clip `index` (the `segment` of the file when given); the
    header is checked before decoding."""
    where = f"audio clip {index}"
    try:
        info = probe_audio(path)
        if info.frames == 0:
            raise SampleRejected(f"{where}: {path}: file holds zero samples; drop it from the manifest")
        if segment is not None and segment[1] > info.seconds:
            raise SampleRejected(f"{where}: {path}: end {segment[1]} s is past the file's {info.seconds:.2f} s; "
                                 "fix start/end")
        seconds = info.seconds if segment is None else segment[1] - segment[0]
        if seconds > MAX_SECONDS:
            raise SampleRejected(
                f"{where}: {path}: {seconds:.2f} s long, over the {MAX_SECONDS} s the audio encoder takes; "
                "split the clip or drop it"
            )
        waveform = load_audio(path, segment)
    except AudioDecodeError as error:
        raise SampleRejected(f"{where}: {error}") from None
    try:
        mel = log_mel(waveform, dtype=torch.float16)
    except ValueError as error:
        raise SampleRejected(f"{where}: {path}: {error}") from None
    return mel, len(waveform) / SAMPLE_RATE
