"""SpecAugment (frequency and time masking) on a normalised log-mel, applied on the fly at training time.

Masks are drawn from a generator seeded per sample, so they depend only on (seed, mel shape): every data-parallel or
tensor-parallel rank that sees a sample draws the same masks, and a resumed run redraws the masks it would have drawn.
The released Qwen-Audio code has no SpecAugment; the defaults follow the LibriSpeech "LD" policy of the SpecAugment
paper (2 frequency masks of up to 27 bins, 2 time masks of up to 100 frames), with the time masks also capped by a
fraction of the clip (as in the paper's adaptive policy) so a short clip keeps most of its frames.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

MelArray = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class SpecAugmentConfig:
    """Mask counts and widths; each width is drawn uniformly from 0 to its maximum, each start uniformly over the
    positions where the whole mask fits. Masks of one kind may overlap.

    fill chooses what masked cells hold:
      "mean"  the mean of the whole input clip (before masking), so the masked cells carry no information but keep
              the clip's level (the common choice for mean-free inputs such as Whisper's normalised log-mel);
      "floor" the clip's minimum, which for Whisper features is the silence level the per-clip clamp produces,
              so a masked region looks like silence.
    """

    enabled: bool = True
    freq_masks: int = 2
    max_freq_width: int = 27  # mel bins
    time_masks: int = 2
    max_time_width: int = 100  # frames (10 ms each)
    # Cap on the time masks together: each is at most max_time_fraction * frames / time_masks wide, so all time masks
    # cover at most this fraction of the clip even without overlap.
    max_time_fraction: float = 0.2
    fill: Literal["mean", "floor"] = "mean"

    def __post_init__(self):
        if min(self.freq_masks, self.max_freq_width, self.time_masks, self.max_time_width) < 0:
            raise ValueError(f"SpecAugmentConfig mask counts and widths must be >= 0, got {self}")
        if not 0.0 <= self.max_time_fraction <= 1.0:
            raise ValueError(f"SpecAugmentConfig.max_time_fraction must be in [0, 1], got {self.max_time_fraction}")
        if self.fill not in ("mean", "floor"):
            raise ValueError(f"SpecAugmentConfig.fill must be 'mean' or 'floor', got {self.fill!r}")


@dataclass(frozen=True)
class Mask:
    """One masked band: `width` consecutive rows (axis 0, mel bins) or columns (axis 1, frames) from `start`."""

    axis: int
    start: int
    width: int


def augment_seed(base_seed: int, epoch: int, key: str) -> int:
    """A 64-bit seed for one sample in one epoch, stable across processes and machines.

    A cryptographic hash (not Python's per-process salted hash()) makes seeds of different samples independent
    even for neighbouring keys, and the same on every rank.
    """
    digest = hashlib.blake2b(f"{base_seed}:{epoch}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _max_time_width(config: SpecAugmentConfig, num_frames: int) -> int:
    if config.time_masks == 0:
        return 0
    return min(config.max_time_width, int(config.max_time_fraction * num_frames / config.time_masks))


def draw_masks(config: SpecAugmentConfig, num_bins: int, num_frames: int, seed: int) -> list[Mask]:
    """The masks for a [num_bins, num_frames] mel under `seed`: frequency masks first, then time masks."""
    rng = np.random.default_rng(seed)
    masks = []
    for axis, count, max_width, size in (
        (0, config.freq_masks, min(config.max_freq_width, num_bins), num_bins),
        (1, config.time_masks, _max_time_width(config, num_frames), num_frames),
    ):
        for _ in range(count):
            width = int(rng.integers(0, max_width, endpoint=True))
            start = int(rng.integers(0, size - width, endpoint=True))
            masks.append(Mask(axis, start, width))
    return masks


def _fill_value(mel: MelArray, fill: str) -> float:
    if isinstance(mel, torch.Tensor):
        as_double = mel.double()
        return float(as_double.mean() if fill == "mean" else as_double.min())
    return float(mel.mean(dtype=np.float64) if fill == "mean" else mel.min())


def spec_augment(mel: MelArray, config: SpecAugmentConfig, seed: int) -> MelArray:
    """A masked copy of `mel` [bins, frames] (numpy or torch, returned as the same type); the input is left untouched.

    With config.enabled False the copy is unmasked.
    """
    if mel.ndim != 2:
        raise ValueError(f"spec_augment expects a [mel bins, frames] array, got shape {tuple(mel.shape)}")
    augmented = mel.clone() if isinstance(mel, torch.Tensor) else mel.copy()
    if not config.enabled:
        return augmented
    fill = _fill_value(mel, config.fill)
    num_bins, num_frames = mel.shape
    for mask in draw_masks(config, num_bins, num_frames, seed):
        band = slice(mask.start, mask.start + mask.width)
        if mask.axis == 0:
            augmented[band, :] = fill
        else:
            augmented[:, band] = fill
    return augmented
