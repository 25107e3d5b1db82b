"""Does the model use the audio? The teacher-forced target loss of held-out samples with their own clip, against the
same samples with another clip of the same spoken language swapped in.

A model that ignores the audio (a language model of the targets) scores both alike; one that listens scores its own
clip far better. The swapped clip is the next held-out clip of the same task and language in shard order (cyclic),
cut or tiled to the original clip's frame count, so the prompt (whose audio span length follows the frame count) is
unchanged and only the audio differs. Losses are token-weighted means over each task's targets.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from megatron_qwen_audio.data.collate import collate
from megatron_qwen_audio.data.sample_decoding import DecodedSample
from megatron_qwen_audio.data.shard_format import SampleEntry
from megatron_qwen_audio.training.train_step import model_inputs


@dataclass
class AudioDependence:
    """One task's matched and swapped target losses (nats per target token)."""

    task: str
    samples: int
    matched_loss: float
    swapped_loss: float

    @property
    def relative_gap(self) -> float:
        """How much lower the matched loss is, as a fraction of the swapped loss (0.1: 10% lower)."""
        return 1.0 - self.matched_loss / self.swapped_loss

    def to_dict(self) -> dict:
        return {"task": self.task, "samples": self.samples, "matched_loss": self.matched_loss,
                "swapped_loss": self.swapped_loss, "relative_gap": self.relative_gap}


@dataclass
class _Sums:
    matched: float = 0.0
    swapped: float = 0.0
    tokens: int = 0
    samples: int = 0


def fitted_clip(mel: np.ndarray, frames: int) -> np.ndarray:
    """`mel` [bins, T] cut or tiled along time to exactly `frames` frames."""
    repeats = -(-frames // mel.shape[1])
    return np.tile(mel, (1, repeats))[:, :frames]


@torch.no_grad()
def _target_loss(model, sample: DecodedSample, task: str, pad_id: int, device: torch.device) -> tuple[float, int]:
    """(summed loss, target tokens) of one sample, teacher-forced."""
    batch = collate([sample], pad_id, [task])
    losses = model(**model_inputs(batch, device))
    return float(losses.sum()), int(batch.num_target_tokens)


def audio_dependence(model, samples: Sequence[tuple[SampleEntry, DecodedSample]], tasks: Sequence[str], pad_id: int,
                     device: torch.device) -> list[AudioDependence]:
    """Matched against swapped losses for each of `tasks` over the single-clip `samples` of that task."""
    groups: dict[tuple[str, str | None], list[DecodedSample]] = defaultdict(list)
    for entry, sample in samples:
        if entry.task in tasks and len(sample.mels) == 1:
            groups[(entry.task, entry.audio_lang)].append(sample)
    totals: dict[str, _Sums] = defaultdict(_Sums)
    for (task, _), group in groups.items():
        if len(group) < 2:
            continue
        for index, sample in enumerate(group):
            other = group[(index + 1) % len(group)].mels[0]
            swapped = replace(sample, mels=[fitted_clip(other, sample.mels[0].shape[1])])
            matched_sum, tokens = _target_loss(model, sample, task, pad_id, device)
            swapped_sum, _ = _target_loss(model, swapped, task, pad_id, device)
            sums = totals[task]
            sums.matched += matched_sum
            sums.swapped += swapped_sum
            sums.tokens += tokens
            sums.samples += 1
    return [AudioDependence(task, sums.samples, sums.matched / sums.tokens, sums.swapped / sums.tokens)
            for task, sums in totals.items()]


def audio_dependence_table(results: Sequence[AudioDependence]) -> str:
    """Markdown: per task, samples, matched and swapped loss, and how much lower the matched one is."""
    lines = ["| task | samples | loss, own audio | loss, swapped audio | own audio lower by |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r.task} | {r.samples} | {r.matched_loss:.3f} | {r.swapped_loss:.3f} | {100 * r.relative_gap:.1f}% |"
              for r in results]
    return "\n".join(lines)
