"""The epoch plan: the exact batches every (rank, worker) slot reads in an epoch, computed from index metadata alone.

The plan is a pure function of (the sets' indexes and weights, seed, epoch, data-parallel size, workers per rank,
batching settings). Every rank computes the same plan without opening a tar, so:
- no sample is read by two ranks and every rank takes the same number of steps (no rank waits at an all-reduce for
  a rank that ran out of data);
- a run resumed from (epoch, step) recomputes the plan and continues with exactly the batches it would have seen.

Stages, each a plain function over lists or iterators (in the spirit of webdataset's pipeline stages):
1. `mix_shards`: every set contributes samples in proportion to its weight, as whole shards: whole passes over the
   set plus a seeded random subset of its shards for the remainder; the shards of all sets are then shuffled.
2. `split_samples`: the shuffled shards, laid end to end (each in file order), are cut into one run of consecutive
   samples per global slot (rank * workers + worker), all of about equal cost, where cost is the share of a batch a
   sample is expected to fill. Cutting between samples rather than between shards keeps slots even however few
   shards there are: a slot reads whole shards plus at most part of one at each end (`ShardRange`), and a shard is
   read by one slot, or by a few when it is larger than a slot's share.
3. `slot_batches`: a slot's samples in file order go through a seeded shuffle buffer, then length-aware batching.
4. `equalize_steps`, the remainder policy: every slot keeps as many batches as the slot with fewest; the surplus
   batches of the other slots are dropped for this epoch (their samples return in later epochs, shuffled afresh).
   Slots start with equal costs, so the surplus is only what batching leaves uneven: how densely samples of
   different lengths pack, and each batching pool's last, partly filled batch. The plan lists what it dropped.
   Rank r's step i is its worker (i % W)'s batch i // W, the order in which torch's DataLoader takes batches from
   W workers, so every rank takes W * (batches per slot) steps.
"""
from __future__ import annotations

import hashlib
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate, chain, pairwise
from typing import NamedTuple

import webdataset

from megatron_qwen_audio.data.length_batching import BatchBudget, SampleSize, batch_by_length
from megatron_qwen_audio.data.loader_config import LoaderConfig
from megatron_qwen_audio.data.shard_sets import ShardSet


class ShardRef(NamedTuple):
    set_id: int
    shard_id: int
    pass_id: int  # which pass over its set this is (a set weighted above its size is read more than once an epoch)


class SampleRef(NamedTuple):
    set_id: int
    shard_id: int
    pass_id: int
    position: int  # the sample's place in its shard (index order, which is the tar's order)

    @property
    def shard(self) -> ShardRef:
        return ShardRef(self.set_id, self.shard_id, self.pass_id)


class ShardRange(NamedTuple):
    """Samples [start, stop) of one shard, by position in the shard: the part of it one slot reads."""

    shard: ShardRef
    start: int
    stop: int


Batch = list[SampleRef]


def seeded_rng(stage: str, *parts: int) -> random.Random:
    """A generator for one stage of one epoch; seeded from a string, which Python hashes the same in every process."""
    return random.Random("/".join([stage, *map(str, parts)]))


def mix_shards(shard_sizes: Sequence[Sequence[int]], weights: Sequence[float], seed: int, epoch: int) -> list[ShardRef]:
    """The epoch's shards: set k (shard sample counts `shard_sizes[k]`) contributes about weight_k / sum(weights) of
    all samples, as whole passes over its shards plus a seeded random subset for the remainder; then all are
    shuffled. Weights proportional to the set sizes give every shard exactly once."""
    total = sum(sum(sizes) for sizes in shard_sizes)
    shards: list[ShardRef] = []
    for set_id, (sizes, weight) in enumerate(zip(shard_sizes, weights, strict=True)):
        target = round(weight / sum(weights) * total)
        passes, remainder = divmod(target, sum(sizes))
        shards += [ShardRef(set_id, shard_id, pass_id) for pass_id in range(passes) for shard_id in range(len(sizes))]
        rng = seeded_rng("mixture", seed, epoch, set_id)
        shards += [ShardRef(set_id, shard_id, passes) for shard_id in _shards_near(sizes, remainder, rng)]
    seeded_rng("shards", seed, epoch).shuffle(shards)
    return shards


def _shards_near(sizes: Sequence[int], target: int, rng: random.Random) -> list[int]:
    """Random shards whose samples add up about to `target`: in a random order, take each that brings the sum closer."""
    order = list(range(len(sizes)))
    rng.shuffle(order)
    chosen, total = [], 0
    for shard_id in order:
        if abs(total + sizes[shard_id] - target) < abs(total - target):
            chosen.append(shard_id)
            total += sizes[shard_id]
    return chosen


def split_samples(
    shards: Sequence[ShardRef], sample_costs: Callable[[ShardRef], Sequence[float]], num_slots: int
) -> list[list[ShardRange]]:
    """Cut `shards`, laid end to end with each shard's samples in file order, into `num_slots` consecutive runs of
    about equal cost: slot k takes the samples whose cost so far (before them) lies in [k, k + 1) x total/num_slots,
    so each slot's cost is within one sample's cost of an equal share. Returns each slot's run as shard ranges."""
    costs = [sample_costs(shard) for shard in shards]
    cost_before = list(accumulate(chain.from_iterable(costs), initial=0.0))  # of each sample, in the whole run
    total = cost_before.pop()
    cuts = [bisect_left(cost_before, total * slot / num_slots) for slot in range(num_slots)] + [len(cost_before)]
    shard_first = list(accumulate(map(len, costs), initial=0))  # each shard's first sample in the whole run
    slots = []
    for begin, end in pairwise(cuts):
        ranges = []
        index = bisect_right(shard_first, begin) - 1  # the shard holding sample `begin`
        while index < len(shards) and shard_first[index] < end:
            start = max(begin, shard_first[index]) - shard_first[index]
            stop = min(end, shard_first[index + 1]) - shard_first[index]
            if stop > start:
                ranges.append(ShardRange(shards[index], start, stop))
            index += 1
        slots.append(ranges)
    return slots


def slot_samples(ranges: Sequence[ShardRange]) -> Iterator[SampleRef]:
    """A slot's samples in reading order: its shard ranges in turn, each in file order."""
    for shard, start, stop in ranges:
        for position in range(start, stop):
            yield SampleRef(*shard, position)


def slot_batches(
    samples: Iterator[SampleRef],
    size: Callable[[SampleRef], SampleSize],
    budget: BatchBudget,
    shuffle_buffer: int,
    batching_pool: int,
    shuffle_rng: random.Random,
    batch_rng: random.Random,
) -> list[Batch]:
    """A slot's batches: samples through a shuffle buffer (webdataset's, filled before the first pick), then
    length-aware batching (`batch_rng` orders each pool's batches)."""
    shuffled = webdataset.shuffle(shuffle_buffer, shuffle_buffer, rng=shuffle_rng)(samples)
    return list(batch_by_length(shuffled, size, budget, batching_pool, batch_rng))


def equalize_steps(batches_by_slot: Sequence[list[Batch]]) -> tuple[list[list[Batch]], list[SampleRef]]:
    """Keep the first (fewest over slots) batches of every slot; return them and the samples of the dropped rest."""
    keep = min(len(batches) for batches in batches_by_slot)
    dropped = [sample for batches in batches_by_slot for batch in batches[keep:] for sample in batch]
    return [list(batches[:keep]) for batches in batches_by_slot], dropped


@dataclass
class EpochPlan:
    epoch: int
    workers: int  # slots per rank
    slot_ranges: list[list[ShardRange]]  # per global slot: the parts of shards it reads, in order
    slot_batches: list[list[Batch]]  # per global slot: its batches, all slots equally many
    dropped: list[SampleRef]  # samples of the surplus batches left out to equalize steps

    @property
    def batches_per_slot(self) -> int:
        return len(self.slot_batches[0])

    @property
    def num_samples(self) -> int:
        """Samples the epoch's kept batches hold, all ranks together."""
        return sum(len(batch) for batches in self.slot_batches for batch in batches)

    @property
    def steps_per_rank(self) -> int:
        return self.workers * self.batches_per_slot

    def slot(self, rank: int, worker: int) -> int:
        return rank * self.workers + worker

    def rank_batches(self, rank: int) -> list[Batch]:
        """Rank `rank`'s batches in step order: step i is worker (i % W)'s batch i // W."""
        return [self.slot_batches[self.slot(rank, step % self.workers)][step // self.workers]
                for step in range(self.steps_per_rank)]

    @cached_property
    def fingerprint(self) -> str:
        """Hash of every slot's batches: equal on all ranks, and equal across runs exactly when the plans are."""
        digest = hashlib.sha256()
        for batches in self.slot_batches:
            digest.update(repr(batches).encode())
        return digest.hexdigest()[:16]


class EpochPlanner:
    """Plans epochs over a fixed list of shard sets for one data-parallel size; remembers the latest plan."""

    def __init__(self, sets: Sequence[ShardSet], config: LoaderConfig, dp_size: int) -> None:
        self.config = config
        self.dp_size = dp_size
        self.budget = config.batch_budget()
        self._shard_sizes = [[len(shard.samples) for shard in s.index.shards] for s in sets]
        self._weights = [s.weight for s in sets]
        self._sample_sizes = [
            [[SampleSize(sample.tokens - 1, sum(sample.frames)) for sample in shard.samples]
             for shard in s.index.shards]
            for s in sets
        ]
        self._sample_costs = [[list(map(self.budget.cost, sizes)) for sizes in shards] for shards in self._sample_sizes]
        self._check_budget(sets)
        self._latest: EpochPlan | None = None

    def _check_budget(self, sets: Sequence[ShardSet]) -> None:
        for set_id, shards in enumerate(self._sample_sizes):
            for shard_id, sizes in enumerate(shards):
                for position, size in enumerate(sizes):
                    refusal = self.budget.refusal(size)
                    if refusal is not None:
                        key = sets[set_id].index.shards[shard_id].samples[position].key
                        raise ValueError(f"{sets[set_id].describe_shard(shard_id)} sample {key}: {refusal}; "
                                         "raise the batch budget or leave the sample out of the shard set")

    def _sample_size(self, sample: SampleRef) -> SampleSize:
        return self._sample_sizes[sample.set_id][sample.shard_id][sample.position]

    def _sample_costs_of(self, shard: ShardRef) -> list[float]:
        return self._sample_costs[shard.set_id][shard.shard_id]

    def plan(self, epoch: int) -> EpochPlan:
        if self._latest is not None and self._latest.epoch == epoch:
            return self._latest
        config = self.config
        shards = mix_shards(self._shard_sizes, self._weights, config.seed, epoch)
        slots = split_samples(shards, self._sample_costs_of, self.dp_size * config.slots_per_rank)
        batches = [
            slot_batches(slot_samples(ranges), self._sample_size, self.budget, config.shuffle_buffer,
                         config.batching_pool,
                         shuffle_rng=seeded_rng("samples", config.seed, epoch, slot),
                         batch_rng=seeded_rng("batches", config.seed, epoch, slot))
            for slot, ranges in enumerate(slots)
        ]
        kept, dropped = equalize_steps(batches)
        plan = EpochPlan(epoch, config.slots_per_rank, slots, kept, dropped)
        if plan.batches_per_slot == 0:
            samples = sum(self._shard_sizes[shard.set_id][shard.shard_id] for shard in shards)
            raise ValueError(
                f"epoch {epoch} plans no batches for some slot: {samples} samples over {len(slots)} slots "
                f"(dp_size {self.dp_size} x {config.slots_per_rank} workers); use fewer ranks or workers, or more data"
            )
        self._latest = plan
        return plan
