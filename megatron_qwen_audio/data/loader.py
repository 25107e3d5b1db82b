"""The training loader: batches of one data-parallel rank, over epochs, resumable at any step.

`AudioTextLoader` plans each epoch from the sets' indexes (see `epoch_plan`), hands every DataLoader worker one
slot of that plan, and lets the workers fetch, decode, augment and collate exactly the batches the plan names.
Its position is (epoch, step): the batches this rank has taken so far in the epoch. Every rank is always at the
same position (all take the same number of steps), so one saved state serves all ranks.
"""
from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator, Sequence
from functools import cache

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from megatron_qwen_audio.audio import augment_seed, spec_augment
from megatron_qwen_audio.data.collate import AudioTextBatch, collate
from megatron_qwen_audio.data.epoch_plan import EpochPlan, EpochPlanner, SampleRef
from megatron_qwen_audio.data.loader_config import LoaderConfig
from megatron_qwen_audio.data.sample_decoding import DecodedSample, decode_sample
from megatron_qwen_audio.data.shard_format import SampleEntry
from megatron_qwen_audio.data.shard_reader import RawSample, gather_batches, read_needed_samples
from megatron_qwen_audio.data.shard_sets import ShardSet, ShardSetSpec, open_shard_sets

logger = logging.getLogger(__name__)
DROPPED_SHARE_WARNING = 0.1  # warn when equalizing steps drops more than this share of an epoch


@cache
def worker_start_context() -> multiprocessing.context.BaseContext:
    """How DataLoader workers start: from a fork server, never by forking the training process itself.

    A training process runs threads (gloo or NCCL, OpenMP, the queue feeders of its other loaders), and a fork taken
    while one of them holds a lock leaves the child blocked inside fork: the demo's held-out loader, which starts new
    workers at every evaluation, hung that way with one rank waiting for a batch that never came. The fork server is
    a fresh single-threaded process; it preloads torch and this module once, so each worker still starts in a
    fraction of a second.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", __name__])
    return context


def batches_taken(step: int, worker: int, workers: int) -> int:
    """How many of `worker`'s batches a rank has taken after `step` steps (step i comes from worker i % workers)."""
    return (step + workers - 1 - worker) // workers


class RankBatchStream(IterableDataset):
    """One rank's batches from (epoch, step) on, epoch after epoch without end.

    DataLoader takes batches from its workers in turn, starting at worker 0, so worker d serves the plan slot that
    owns step `step + d` and every W-th step after it; since every epoch has a multiple of W steps, that stays the
    same slot in all later epochs. One iterator over all epochs keeps the workers alive across epoch boundaries.
    """

    def __init__(self, planner: EpochPlanner, sets: Sequence[ShardSet], dp_rank: int, epoch: int, step: int) -> None:
        self.planner, self.sets, self.config, self.dp_rank = planner, sets, planner.config, dp_rank
        self.epoch, self.step = epoch, step

    def __iter__(self) -> Iterator[AudioTextBatch]:
        info = get_worker_info()
        workers = self.config.slots_per_rank
        local_slot = ((info.id if info else 0) + self.step) % workers
        epoch, step = self.epoch, self.step
        while True:
            plan = self.planner.plan(epoch)
            yield from self._slot_batches(plan, plan.slot(self.dp_rank, local_slot),
                                          batches_taken(step, local_slot, workers))
            epoch, step = epoch + 1, 0

    def _slot_batches(self, plan: EpochPlan, slot: int, start: int) -> Iterator[AudioTextBatch]:
        batches = plan.slot_batches[slot][start:]
        needed = (sample for batch in batches for sample in batch)
        shards = [shard_range.shard for shard_range in plan.slot_ranges[slot]]
        raw_batches = gather_batches(batches, read_needed_samples(self.sets, shards, needed))
        for batch, raws in zip(batches, raw_batches):
            decoded = [self._decode(sample, raw, plan.epoch) for sample, raw in zip(batch, raws)]
            yield collate(decoded, self.config.pad_token_id, [self._entry(sample).task for sample in batch],
                          pack=self.config.pack_sequences)

    def _entry(self, sample: SampleRef) -> SampleEntry:
        return self.sets[sample.set_id].index.shards[sample.shard_id].samples[sample.position]

    def _decode(self, sample: SampleRef, raw: RawSample, epoch: int) -> DecodedSample:
        entry = self._entry(sample)
        decoded = decode_sample(raw, entry, f"{self.sets[sample.set_id].name}/{entry.key}")
        # Seeded by the sample (its pass over the set and the clip), never by rank, worker or position: any rank
        # that reads this sample in this epoch draws the same masks.
        decoded.mels = [
            spec_augment(mel, self.config.spec_augment,
                         augment_seed(self.config.seed, epoch, f"{decoded.key}/{sample.pass_id}/{clip}"))
            for clip, mel in enumerate(decoded.mels)
        ]
        return decoded


class AudioTextLoader:
    """Batches for data-parallel rank `dp_rank` of `dp_size`, from shard sets mixed by weight.

    Iterating yields `AudioTextBatch`es forever, epoch after epoch, from the current position; `steps_per_epoch`
    says where epochs end. `state_dict()` / `load_state_dict()` save and restore the position exactly.
    """

    def __init__(self, sets: Sequence[ShardSetSpec], config: LoaderConfig, dp_rank: int, dp_size: int) -> None:
        if not 0 <= dp_rank < dp_size:
            raise ValueError(f"data-parallel rank {dp_rank} is outside 0..{dp_size - 1} (dp_size {dp_size})")
        self.config, self.dp_rank, self.dp_size = config, dp_rank, dp_size
        self.sets = open_shard_sets(sets)
        self.planner = EpochPlanner(self.sets, config, dp_size)
        self.epoch = 0
        self.step = 0  # batches this rank has taken in `epoch`
        self._warn_if_slots_are_unbalanced(self.plan(0))

    @staticmethod
    def _warn_if_slots_are_unbalanced(plan: EpochPlan) -> None:
        """Slots start with equal costs, but batching packs each a little differently; when slots fill only a few
        batches, the batch or two by which the longer ones exceed the shortest is a large share, dropped every epoch."""
        share = len(plan.dropped) / (len(plan.dropped) + plan.num_samples)
        if share > DROPPED_SHARE_WARNING:
            logger.warning("equal steps drop %.0f%% of epoch %d's samples (%d slots, batches per slot: %d); fewer "
                           "ranks or workers, or smaller batches, drop less", 100 * share, plan.epoch,
                           len(plan.slot_ranges), plan.batches_per_slot)

    def plan(self, epoch: int) -> EpochPlan:
        return self.planner.plan(epoch)

    def steps_per_epoch(self, epoch: int) -> int:
        return self.plan(epoch).steps_per_rank

    def __iter__(self) -> Iterator[AudioTextBatch]:
        stream = RankBatchStream(self.planner, self.sets, self.dp_rank, self.epoch, self.step)
        workers = self.config.workers
        loader = DataLoader(
            stream,
            batch_size=None,
            num_workers=workers,
            multiprocessing_context=worker_start_context() if workers else None,
            prefetch_factor=self.config.prefetch_batches if workers else None,
            generator=torch.Generator().manual_seed(self.config.seed),  # leaves the global torch RNG untouched
        )
        for batch in loader:
            self.step += 1
            if self.step == self.steps_per_epoch(self.epoch):
                self.epoch, self.step = self.epoch + 1, 0
            yield batch

    def _plan_inputs(self) -> dict:
        config = self.config
        return {
            "dp_size": self.dp_size,
            "workers": config.slots_per_rank,
            "seed": config.seed,
            "batching": [config.max_batch_tokens, config.max_batch_frames, config.max_batch_samples,
                         config.shuffle_buffer, config.batching_pool],
            "sets": [[shard_set.name, shard_set.weight, shard_set.digest] for shard_set in self.sets],
        }

    def state_dict(self) -> dict:
        """The position (the same on every rank) and what the plan was computed from, so a restore can check it."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "plan_fingerprint": self.plan(self.epoch).fingerprint,
            "plan_inputs": self._plan_inputs(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position; the next iteration yields exactly the batches the saved run had next."""
        missing = {"epoch", "step", "plan_fingerprint", "plan_inputs"} - state.keys()
        if missing:
            raise ValueError(f"loader state lacks {sorted(missing)}; pass the dict that state_dict() returned")
        saved, current = state["plan_inputs"], self._plan_inputs()
        differences = [f"{name}: saved {saved.get(name)!r}, now {value!r}" for name, value in current.items()
                       if saved.get(name) != value]
        if differences:
            raise ValueError(f"loader state was saved for other data or settings ({'; '.join(differences)}); "
                             "resume with the same shard sets, seed, data-parallel size, workers and batching")
        plan = self.plan(state["epoch"])
        if plan.fingerprint != state["plan_fingerprint"]:
            raise ValueError(f"epoch {state['epoch']} plans other batches than the saved run did although its inputs "
                             "match (a different loader or webdataset version?); resume with the versions it used")
        if not 0 <= state["step"] < plan.steps_per_rank:
            raise ValueError(f"loader state step {state['step']} is outside epoch {state['epoch']}'s "
                             f"{plan.steps_per_rank} steps; pass the dict that state_dict() returned")
        self.epoch, self.step = state["epoch"], state["step"]
