"""Audio files -> float32 mono 16 kHz waveforms, the only input the log-mel frontend accepts.

Decoding is libsndfile (through soundfile: wav, flac, ogg, and mp3 where the bundled libsndfile reads it) and
resampling is soxr at high quality, the fastest and most accurate resampler measured for this job. Every failure
surfaces as one AudioDecodeError naming the file, so a shard builder can record the reason and move on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr

from megatron_qwen_audio.audio.lengths import SAMPLE_RATE


class AudioDecodeError(ValueError):
    """A file that cannot become a usable waveform; the message names the file and the cause on one line."""

    def __init__(self, path: str | os.PathLike, cause: str):
        self.path = os.fspath(path)
        self.cause = " ".join(cause.split())
        super().__init__(f"{self.path}: {self.cause}")


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says, read without decoding the samples."""

    sample_rate: int
    frames: int  # samples per channel at sample_rate
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def _unreadable(path: str | os.PathLike, error: soundfile.LibsndfileError) -> AudioDecodeError:
    if not os.path.exists(path):
        return AudioDecodeError(path, "file not found; fix the path in the manifest")
    return AudioDecodeError(
        path, f"cannot read audio ({error.error_string}); re-encode it as WAV/FLAC or drop it from the manifest"
    )


def probe_audio(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, length and channel count from the header alone, so over-long clips are rejected before decoding."""
    try:
        info = soundfile.info(os.fspath(path))
    except soundfile.LibsndfileError as error:
        raise _unreadable(path, error) from error
    return AudioInfo(sample_rate=info.samplerate, frames=info.frames, channels=info.channels)


def load_audio(path: str | os.PathLike, segment: tuple[float, float] | None = None) -> np.ndarray:
    """Decode `path` to a float32 mono waveform at 16 kHz: channels averaged, other rates resampled with soxr (HQ).
    With `segment` = (start, end) in seconds, only that range of the file is read (a clip of a long recording).

    Raises AudioDecodeError for a missing or unreadable file, a file with no samples, or non-finite samples.
    """
    try:
        with soundfile.SoundFile(os.fspath(path)) as audio:
            sample_rate = audio.samplerate
            frames = -1
            if segment is not None:
                first = round(segment[0] * sample_rate)
                frames = round(segment[1] * sample_rate) - first
                audio.seek(first)
            data = _read_float32(audio, frames)
    except soundfile.LibsndfileError as error:
        raise _unreadable(path, error) from error
    if data.shape[0] == 0:
        raise AudioDecodeError(path, "file holds zero samples; drop it from the manifest")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise AudioDecodeError(path, "file holds NaN or infinite samples; re-encode it or drop it from the manifest")
    if sample_rate == SAMPLE_RATE:
        return np.ascontiguousarray(mono)
    return soxr.resample(mono, sample_rate, SAMPLE_RATE, quality="HQ")


def _read_float32(audio: soundfile.SoundFile, frames: int = -1) -> np.ndarray:
    """`frames` frames from the current position (-1: to the end) as float32 [frames, channels], the values
    libsndfile's float read gives.

    16-bit PCM (most speech corpora) is read as int16 and scaled by 2**-15 here: the same values libsndfile's own
    float conversion produces (an exact power-of-two scaling), at a quarter of its cost.
    """
    if audio.subtype != "PCM_16":
        return audio.read(frames, dtype="float32", always_2d=True)
    pcm = audio.read(frames, dtype="int16", always_2d=True)
    return np.multiply(pcm, np.float32(1 / 32768), dtype=np.float32)
