"""Fetch the raw bytes of exactly the samples a plan names, streaming each needed shard once, in plan order.

Shards are opened with webdataset's `gopen` (local paths, `file:`, `pipe:`, http...) and walked member by member
with its tar iterator. Only the members the loader decodes (those the index entry implies) of needed samples are
read; the rest (samples consumed before a resume, dropped, or another slot's part of the shard, and the json
metadata) are streamed past without their bytes being kept. A sample is handed on as soon as its members are read,
and a shard is closed right after its last needed sample, so a slot whose part ends early in a shard does not
stream the rest; shards without any needed sample are not opened at all. Nothing is decoded here: decoding waits
until a batch is about to be emitted.
"""
from __future__ import annotations

import tarfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing

import webdataset
from webdataset.gopen import set_options
from webdataset.tariterators import tar_file_iterator

from megatron_qwen_audio.data.epoch_plan import Batch, SampleRef, ShardRef
from megatron_qwen_audio.data.shard_sets import ShardSet

RawSample = dict[str, bytes]  # member suffix ("tokens.npy", "mel.npy", ...) -> bytes


class ShardReadError(OSError):
    """A shard named by the plan could not be read, or does not hold what its index says."""


def _split_member(file_name: str) -> tuple[str, str]:
    key, _, suffix = file_name.partition(".")
    return key, suffix


def read_shard(shard_set: ShardSet, shard_id: int, wanted: Iterable[str]) -> Iterator[tuple[str, RawSample]]:
    """(key, members) of the samples with keys in `wanted` (keys its index lists), in file order, from one shard of
    `shard_set`; the shard is closed once the last of them is read."""
    entries = {entry.key: entry for entry in shard_set.index.shards[shard_id].samples}
    unread = {key: set(entries[key].array_members()) for key in wanted}  # wanted sample -> members not read yet
    where = shard_set.describe_shard(shard_id)

    def unread_member(file_name: str) -> bool:
        key, suffix = _split_member(file_name)
        return suffix in unread.get(key, ())

    partial: dict[str, RawSample] = {}
    try:
        with closing(webdataset.gopen(shard_set.shard_url(shard_id))) as stream:
            try:
                for member in tar_file_iterator(stream, select_files=unread_member):
                    key, suffix = _split_member(member["fname"])
                    partial.setdefault(key, {})[suffix] = member["data"]
                    unread[key].discard(suffix)
                    if not unread[key]:
                        del unread[key]
                        yield key, partial.pop(key)
                        if not unread:
                            break
            except GeneratorExit:
                # The consumer has what it needs and stops mid-shard: a `pipe:` writer that then fails on its broken
                # pipe is expected, not an error.
                set_options(stream, ignore_errors=True)
                raise
            if not unread:  # every wanted sample is read, perhaps mid-shard: likewise
                set_options(stream, ignore_errors=True)
    except (OSError, tarfile.TarError) as exc:
        raise ShardReadError(f"{where}: cannot be read ({exc}); check that the shard exists and is complete") from exc
    incomplete = sorted(unread.keys() & partial.keys())
    if incomplete:
        key = incomplete[0]
        raise ShardReadError(f"{where}: sample {key} lacks member(s) {sorted(unread[key])} that its index implies; "
                             "rebuild the shard set")
    if unread:
        raise ShardReadError(f"{where}: lacks sample {min(unread)} (and {len(unread) - 1} more) that its index "
                             "lists; rebuild the shard set")


def read_needed_samples(
    sets: Sequence[ShardSet], shards: Sequence[ShardRef], needed: Iterable[SampleRef]
) -> Iterator[tuple[SampleRef, RawSample]]:
    """The needed samples' raw members, walking `shards` in order and skipping shards that hold none of them."""
    needed_keys: dict[ShardRef, dict[str, SampleRef]] = defaultdict(dict)
    for sample in needed:
        key = sets[sample.set_id].index.shards[sample.shard_id].samples[sample.position].key
        needed_keys[sample.shard][key] = sample
    for shard in shards:
        keys = needed_keys.get(shard)
        if keys:
            for key, raw in read_shard(sets[shard.set_id], shard.shard_id, keys):
                yield keys[key], raw


def gather_batches(
    batches: Sequence[Batch], samples: Iterator[tuple[SampleRef, RawSample]]
) -> Iterator[list[RawSample]]:
    """Raw samples of each batch in turn, pulling from `samples` (in file order) and holding the ones that come
    early; the plan's shuffle buffer and batching pool bound how many are held."""
    held: dict[SampleRef, RawSample] = {}
    for batch in batches:
        for sample in batch:
            while sample not in held:
                ref, raw = next(samples)
                held[ref] = raw
        yield [held.pop(sample) for sample in batch]
