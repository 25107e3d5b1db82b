"""Length-aware batching under a budget: dense batches for variable-length audio and text.

A batch costs decoder positions (batch size x longest sequence when rows are padded; the sum of the sequences when
the batch is packed into one row) and encoder work (the sum of its clips' mel frames, since the encoder takes clips
packed along time). Sorting a pool of samples by length before cutting it
into batches keeps padding small; shuffling the batches of a pool afterwards keeps long and short batches mixed in
time. Works on any items: the caller says how long each one is.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

Item = TypeVar("Item")


class SampleSize(NamedTuple):  # a tuple, so sorting by length compares in C
    sequence: int  # decoder positions the sample fills (its token count minus the last, which is only a target)
    frames: int  # mel frames of all its clips together (0 for text-only samples)


@dataclass(frozen=True)
class BatchBudget:
    max_tokens: int  # batch size x longest sequence, or with `packed` the summed sequences
    max_frames: int  # summed mel frames
    max_samples: int  # batch size
    packed: bool = False  # the batch becomes one packed row (collate's pack): no padding positions to pay for

    def positions(self, samples: int, longest: int, summed: int) -> int:
        """Decoder positions a batch of `samples` sequences (the longest `longest`, together `summed`) occupies."""
        return summed if self.packed else samples * longest

    def refusal(self, size: SampleSize) -> str | None:
        """Why a sample can never be batched under this budget, or None when it fits alone."""
        if size.sequence < 1:
            return "fewer than 2 tokens leave nothing to predict"
        if size.sequence > self.max_tokens:
            return f"{size.sequence} tokens exceed max_batch_tokens={self.max_tokens}"
        if size.frames > self.max_frames:
            return f"{size.frames} mel frames exceed max_batch_frames={self.max_frames}"
        return None

    def cost(self, size: SampleSize) -> float:
        """The share of one batch a sample takes: what the busiest limit says (used to balance work across slots)."""
        return max(size.sequence / self.max_tokens, size.frames / self.max_frames, 1 / self.max_samples)


def cut_batches(items: list[Item], size: Callable[[Item], SampleSize], budget: BatchBudget) -> list[list[Item]]:
    """Cut items, in the given order, into consecutive batches that each stay within the budget."""
    batches: list[list[Item]] = []
    batch: list[Item] = []
    longest = summed = frames = 0
    for item in items:
        item_size = size(item)
        grown_longest = max(longest, item_size.sequence)
        fits = (
            len(batch) < budget.max_samples
            and budget.positions(len(batch) + 1, grown_longest, summed + item_size.sequence) <= budget.max_tokens
            and frames + item_size.frames <= budget.max_frames
        )
        if batch and not fits:
            batches.append(batch)
            batch, longest, summed, frames = [], 0, 0, 0
            grown_longest = item_size.sequence
        batch.append(item)
        longest, summed, frames = grown_longest, summed + item_size.sequence, frames + item_size.frames
    if batch:
        batches.append(batch)
    return batches


def batch_by_length(
    items: Iterable[Item],
    size: Callable[[Item], SampleSize],
    budget: BatchBudget,
    pool_size: int,
    rng: random.Random,
) -> Iterator[list[Item]]:
    """Batches of items under `budget`: each pool of `pool_size` consecutive items is sorted by length (stable, so
    equal lengths keep their order), cut into batches, and its batches are yielded in an `rng`-shuffled order."""
    pool: list[Item] = []

    def flush() -> list[list[Item]]:
        batches = cut_batches(sorted(pool, key=size), size, budget)
        rng.shuffle(batches)
        pool.clear()
        return batches

    for item in items:
        pool.append(item)
        if len(pool) == pool_size:
            yield from flush()
    if pool:
        yield from flush()
