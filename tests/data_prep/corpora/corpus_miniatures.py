"""Miniature corpora for the manifest-builder tests: short generated audio under the real file names, and a check
that every row a builder emits is a valid sample (the manifest reader accepts it and the tag builder builds its
token sequence with the real tokenizer)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from data_prep.manifest import ManifestRow
from megatron_qwen_audio.audio.lengths import SAMPLE_RATE, mel_frame_count
from megatron_qwen_audio.text.tags import build_sequence


def write_audio(path: Path, seconds: float = 0.5, sample_rate: int = SAMPLE_RATE) -> Path:
    """A short tone at `path` (format from the suffix: .wav, .flac, .ogg), folders created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    soundfile.write(path, (0.1 * np.sin(2 * np.pi * 440 * time)).astype(np.float32), sample_rate)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def assert_builds(row: ManifestRow, tokenizer) -> None:
    """The row is a manifest row whose clips exist and whose sample the tag builder turns into a sequence."""
    assert isinstance(row, ManifestRow), row
    frames, seconds = [], []
    for path in row.audio_paths:
        info = soundfile.info(path)
        start, end = row.sample.get("start", 0.0), row.sample.get("end", info.duration)
        frames.append(mel_frame_count(round((end - start) * SAMPLE_RATE)))
        seconds.append(end - start)
    build_sequence(row.sample, frames, seconds, tokenizer)


def audio_names(rows: list[dict]) -> list[str]:
    return [Path(row["audio"]).name for row in rows]
