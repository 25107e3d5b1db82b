"""Measured comparison of training loaders for this project's shards: megatron-energon vs the project's own loader.

Why this exists: the loader must split shards over data-parallel ranks and workers, shuffle deterministically, mix
shard sets by weight, batch under a mel-frame budget, give every rank the same number of steps, see every sample once
per epoch, and resume late in an epoch from a small saved position without decoding what it skips. Whether to build on
megatron-energon or on plain webdataset plus the project's metadata-driven epoch planner is decided by the numbers
this script prints, measured on the same synthetic shard set (this project's format) in one run.

Every measurement talks to a loader through `LoaderSide` / `OpenLoader`, so each side fills the same table rows:
energon twice (its default internal checkpoint interval of 60 s, and a checkpoint every few batches, which decides
how much a restore replays) and the project's loader through `project_loader_side()`.

Usage: python benchmarks/compare_energon.py [--shards 8] [--samples-per-shard 250] [--seed 1234]
"""
import os

# Before torch and tqdm are imported: both read these once, at import (energon's packing stage shows a progress bar
# in every worker, and one BLAS thread per process keeps the timings comparable on a small shared machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import contextlib
import importlib
import io
import json
import pickle
import random
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch
import webdataset
import yaml
from megatron.energon import (
    BaseWebdatasetFactory,
    Batch,
    Cooker,
    DefaultTaskEncoder,
    Sample,
    SavableDataLoader,
    WorkerConfig,
    basic_sample_keys,
    cooker,
    edataclass,
    get_savable_loader,
    get_train_dataset,
    stateless,
)
from megatron.energon.flavors.webdataset.config import MAIN_FOLDER_NAME

from megatron_qwen_audio.audio.lengths import HOP_LENGTH, MAX_MEL_FRAMES, SAMPLE_RATE, audio_span_length
from megatron_qwen_audio.data import shard_format
from megatron_qwen_audio.data.shard_format import SampleEntry, ShardEntry, ShardSetIndex
from megatron_qwen_audio.text.special_tokens import AUDIO_END, AUDIO_PAD, AUDIO_START, base_vocab_size, special_tokens

MEL_BINS = 80
MIN_MEL_FRAMES = 200
FRAME_BUDGET = 12_000  # summed mel frames per batch (the encoder takes a batch's clips packed along time)
DP_RANKS = 2
WORKERS_PER_RANK = 2
RESUME_AT_EPOCH_FRACTION = 0.9
CONTINUATION_BATCHES = 5
THROUGHPUT_SAMPLES = 1000
BLEND_WEIGHTS = (3.0, 1.0)  # main set : second set
BLEND_SAMPLES_BEFORE_SAVE = 300
BLEND_CONTINUATION_SAMPLES = 20
# Megatron-LM's multimodal recipe passes 100 for each of these to energon; the same here.
ENERGON_SHUFFLE_BUFFER = 100
ENERGON_SAMPLES_PER_SEQUENCE = 100
ENERGON_PACKING_BUFFER = 100

DECODE_LOG_ENV = "COMPARE_LOADERS_DECODE_LOG"


# ---------------------------------------------------------------------------------------------------------------------
# Synthetic shard sets in this project's format
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardSet:
    directory: Path
    keys: tuple[str, ...]

    @property
    def tar_paths(self) -> list[Path]:
        return sorted(self.directory.glob("*.tar"))


def synthetic_asr_sample(frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random log-mel [80, frames] and a token sequence shaped like an ASR sample: prompt, `<audio>` + pads +
    `</audio>` sized by the released length formulas, transcript; labels cover only the transcript."""
    ids = special_tokens()
    mel = rng.standard_normal((MEL_BINS, frames), dtype=np.float32).astype(np.float16)
    prompt = rng.integers(0, base_vocab_size(), 8, dtype=np.int32)
    span = np.full(audio_span_length(frames), ids[AUDIO_PAD], dtype=np.int32)
    span[0], span[-1] = ids[AUDIO_START], ids[AUDIO_END]
    text = rng.integers(0, base_vocab_size(), int(rng.integers(5, 60)), dtype=np.int32)
    tokens = np.concatenate([prompt, span, text])
    labels = np.concatenate([np.full(len(prompt) + len(span), shard_format.IGNORE_INDEX, np.int32), text])
    return mel, tokens, labels


def write_synthetic_shard_set(
    directory: Path, *, num_shards: int, samples_per_shard: int, first_line: int, rng: np.random.Generator
) -> ShardSet:
    """Tars plus `index.json`, laid out exactly as the shard builder writes them, so any loader here can read them."""
    directory.mkdir(parents=True)
    shards, keys = [], []
    line = first_line
    for shard_index in range(num_shards):
        entry = ShardEntry(name=shard_format.shard_name(shard_index), first_line=line, last_line=line)
        with webdataset.TarWriter(str(directory / entry.name)) as writer:
            for _ in range(samples_per_shard):
                key = shard_format.sample_key(line)
                frames = int(rng.integers(MIN_MEL_FRAMES, MAX_MEL_FRAMES + 1))
                mel, tokens, labels = synthetic_asr_sample(frames, rng)
                writer.write({
                    "__key__": key,
                    shard_format.mel_member(0, 1): shard_format.encode_npy(mel),
                    shard_format.TOKENS_MEMBER: shard_format.encode_npy(tokens),
                    shard_format.LABELS_MEMBER: shard_format.encode_npy(labels),
                    shard_format.META_MEMBER: json.dumps({"task": "asr", "audio_lang": "en", "text_lang": "en",
                                                          "frames": [frames]}).encode(),
                })
                entry.samples.append(SampleEntry(key=key, frames=[frames], tokens=len(tokens), task="asr",
                                                 audio_lang="en", text_lang="en"))
                keys.append(key)
                entry.last_line = line
                line += 1
        shards.append(entry)
    total_frames = sum(sample.frames[0] for shard in shards for sample in shard.samples)
    ShardSetIndex(
        shards=shards, manifest_lines=len(keys), rejected=0, hours=total_frames * HOP_LENGTH / SAMPLE_RATE / 3600,
        counts={"task": {"asr": len(keys)}, "audio_lang": {"en": len(keys)}, "text_lang": {"en": len(keys)}},
        tokenizer_fingerprint="synthetic", builder_version="compare_energon",
    ).write(directory)
    return ShardSet(directory=directory, keys=tuple(keys))


# ---------------------------------------------------------------------------------------------------------------------
# Decode accounting shared by every side: a cross-process log of the samples decoded
# ---------------------------------------------------------------------------------------------------------------------


def record_decode(key: str) -> None:
    """Log that sample `key` is being decoded; every side calls this once per decoded sample, so the counts measure
    the same unit of work on each side and show whether a restore decoded samples it should have skipped."""
    log_path = os.environ.get(DECODE_LOG_ENV)
    if log_path:
        with open(log_path, "a") as log:  # O_APPEND: whole short lines, also from concurrent worker processes
            log.write(key + "\n")


@contextlib.contextmanager
def decode_log(directory: Path) -> Iterator[Callable[[], list[str]]]:
    """Log the keys decoded by loaders whose worker processes start inside this block (workers inherit the
    environment when they start); yields a function that reads the keys logged so far."""
    path = directory / f"decoded-{uuid.uuid4().hex}.txt"
    path.touch()
    os.environ[DECODE_LOG_ENV] = str(path)
    try:
        yield lambda: path.read_text().split()
    finally:
        del os.environ[DECODE_LOG_ENV]


class DecodedMembers(NamedTuple):
    mel: np.ndarray
    tokens: np.ndarray
    labels: np.ndarray


def decode_members(key: str, members: Mapping[str, bytes]) -> DecodedMembers:
    """The npy members of one sample (the json metadata is not needed to train), logged as one decode."""
    record_decode(key)
    return DecodedMembers(
        mel=shard_format.decode_npy(members[shard_format.mel_member(0, 1)]),
        tokens=shard_format.decode_npy(members[shard_format.TOKENS_MEMBER]),
        labels=shard_format.decode_npy(members[shard_format.LABELS_MEMBER]),
    )


# ---------------------------------------------------------------------------------------------------------------------
# What a side must provide
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoaderSpec:
    shard_sets: tuple[tuple[Path, float], ...]  # (shard-set folder, mixture weight)
    rank: int
    world_size: int
    num_workers: int
    seed: int
    frame_budget: int | None  # None: one sample per item; else batches of at most this many summed mel frames
    one_epoch: bool = False  # True: stop after one epoch; False: training mode (endless)


class LoadedBatch(NamedTuple):
    keys: tuple[str, ...]  # sample keys as in the shards
    clip_frames: tuple[int, ...]  # mel frames of every clip in the batch, as the tensors hold them


class OpenLoader(Protocol):
    def batches(self) -> Iterator[LoadedBatch]:
        """Continue from the current position (a new call continues where the last one stopped)."""

    def save_state(self) -> bytes:
        """The position after the last batch handed out, as it would be stored in a checkpoint."""

    def close(self) -> None:
        """Stop the worker processes."""


class LoaderSide(Protocol):
    name: str

    def prepare(self, shard_dir: Path) -> None:
        """One-time work on a built shard set before any loader can read it (nothing, if none is needed)."""

    def open(self, spec: LoaderSpec, state: bytes | None = None) -> OpenLoader:
        """A loader for `spec`, at the start or at a position from `OpenLoader.save_state`."""


def stop_dataloader_workers(loader: torch.utils.data.DataLoader) -> None:
    """torch's DataLoader has no public way to stop persistent workers; left running they would compete for the
    CPUs with the next measurement."""
    if loader._iterator is not None:
        loader._iterator._shutdown_workers()


# ---------------------------------------------------------------------------------------------------------------------
# megatron-energon side
# ---------------------------------------------------------------------------------------------------------------------


@edataclass
class EnergonAudioSample(Sample):
    mel: torch.Tensor  # [80, T] float16
    tokens: torch.Tensor  # [L] int32
    labels: torch.Tensor  # [L] int32


@edataclass
class EnergonAudioBatch(Batch):
    mel: torch.Tensor  # [80, sum T] float16: the clips packed along time, as the project's collate packs them
    mel_lengths: torch.Tensor  # [B]
    tokens: torch.Tensor  # [B, L_max] int32, zero-padded
    labels: torch.Tensor  # [B, L_max] int32, IGNORE_INDEX-padded


@stateless
@cooker
def cook_audio_sample(crude: dict) -> EnergonAudioSample:
    """Energon's "cooker": the raw tar members of one sample -> the custom sample type."""
    decoded = decode_members(crude["__key__"], crude)
    return EnergonAudioSample(
        **basic_sample_keys(crude),
        mel=torch.from_numpy(decoded.mel),
        tokens=torch.from_numpy(decoded.tokens),
        labels=torch.from_numpy(decoded.labels),
    )


def frame_budget_groups(samples: list[EnergonAudioSample], frame_budget: int) -> list[list[EnergonAudioSample]]:
    """Sort by length and cut greedily under the summed-frame budget, then shuffle the groups with a seed taken from
    the buffer's content (deterministic, so the same buffer always gives the same batches)."""
    groups: list[list[EnergonAudioSample]] = []
    frames = 0
    for sample in sorted(samples, key=lambda s: s.mel.shape[-1]):
        if groups and frames + sample.mel.shape[-1] <= frame_budget:
            groups[-1].append(sample)
            frames += sample.mel.shape[-1]
        else:
            groups.append([sample])
            frames = sample.mel.shape[-1]
    random.Random(min(s.__key__ for s in samples)).shuffle(groups)
    return groups


class EnergonAudioTaskEncoder(DefaultTaskEncoder):
    """Variable-size batches in energon: `batch_size=None` plus its packing hooks. `select_samples_to_pack` groups a
    buffer of samples under the frame budget; `pack_selected_samples` turns one group into a batch."""

    decoder = None  # hand raw member bytes to the cooker, which decodes with the project's decode_npy
    cookers = (Cooker(cook_audio_sample),)

    def __init__(self, frame_budget: int | None):
        super().__init__()
        self.frame_budget = frame_budget

    def select_samples_to_pack(self, samples: list[EnergonAudioSample]) -> list[list[EnergonAudioSample]]:
        assert self.frame_budget is not None, "packing runs only with a frame budget"
        return frame_budget_groups(samples, self.frame_budget)

    @stateless
    def pack_selected_samples(self, samples: list[EnergonAudioSample]) -> EnergonAudioBatch:
        return EnergonAudioBatch(
            __key__=[s.__key__ for s in samples],
            __restore_key__=(),  # energon fills it in
            mel=torch.cat([s.mel for s in samples], dim=-1),
            mel_lengths=torch.tensor([s.mel.shape[-1] for s in samples]),
            tokens=torch.nn.utils.rnn.pad_sequence([s.tokens for s in samples], batch_first=True),
            labels=torch.nn.utils.rnn.pad_sequence([s.labels for s in samples], batch_first=True,
                                                   padding_value=shard_format.IGNORE_INDEX),
        )


class EnergonLoader:
    def __init__(self, loader: SavableDataLoader):
        self._loader = loader

    def batches(self) -> Iterator[LoadedBatch]:
        for item in self._loader:
            if isinstance(item, EnergonAudioBatch):
                yield LoadedBatch(keys=tuple(item.__key__), clip_frames=tuple(item.mel_lengths.tolist()))
            else:
                yield LoadedBatch(keys=(item.__key__,), clip_frames=(item.mel.shape[-1],))

    def save_state(self) -> bytes:
        return pickle.dumps(self._loader.save_state_rank())

    def close(self) -> None:
        stop_dataloader_workers(self._loader)


class EnergonSide:
    """energon 7.4 as Megatron-LM's multimodal examples use it: `get_train_dataset` + `get_savable_loader`."""

    def __init__(self, checkpoint_every_sec: float):
        self.checkpoint_every_sec = checkpoint_every_sec
        self.name = f"energon, checkpoint_every_sec={checkpoint_every_sec:g}"

    def prepare(self, shard_dir: Path) -> None:
        """`energon prepare` through its Python API, non-interactive: index every tar, one split `train` holding
        all shards, and the dataset.yaml the CLI writes for `--sample-type CrudeWebdataset`."""
        tars = [path.name for path in sorted(shard_dir.glob("*.tar"))]
        with contextlib.redirect_stdout(io.StringIO()):  # it prints progress lines
            BaseWebdatasetFactory.prepare_dataset(
                shard_dir, tars, split_parts_ratio=[("train", 1.0)], shuffle_seed=None, workers=2
            )
        (shard_dir / MAIN_FOLDER_NAME / "dataset.yaml").write_text(
            yaml.safe_dump({"__module__": "megatron.energon", "__class__": "CrudeWebdataset"})
        )

    def open(self, spec: LoaderSpec, state: bytes | None = None) -> OpenLoader:
        worker_config = WorkerConfig(
            rank=spec.rank, world_size=spec.world_size, num_workers=spec.num_workers, seed_offset=spec.seed
        )
        dataset = get_train_dataset(
            self._dataset_path(spec),
            split_part="train",
            worker_config=worker_config,
            batch_size=None,
            packing_buffer_size=None if spec.frame_budget is None else ENERGON_PACKING_BUFFER,
            shuffle_buffer_size=ENERGON_SHUFFLE_BUFFER,
            max_samples_per_sequence=ENERGON_SAMPLES_PER_SEQUENCE,
            task_encoder=EnergonAudioTaskEncoder(spec.frame_budget),
            repeat=not spec.one_epoch,
        )
        loader = get_savable_loader(dataset, checkpoint_every_sec=self.checkpoint_every_sec)
        if state is not None:
            loader.restore_state_rank(pickle.loads(state))
        return EnergonLoader(loader)

    @staticmethod
    def _dataset_path(spec: LoaderSpec) -> Path:
        """A single set is read directly; several are blended through a metadataset file (energon's only way)."""
        if len(spec.shard_sets) == 1:
            return spec.shard_sets[0][0]
        blend = [{"weight": weight, "path": str(directory)} for directory, weight in spec.shard_sets]
        metadataset = {"__module__": "megatron.energon", "__class__": "MetadatasetV2",
                       "splits": {"train": {"blend": blend}}}
        path = spec.shard_sets[0][0].parent / f"blend-{uuid.uuid4().hex}.yaml"
        path.write_text(yaml.safe_dump(metadataset))
        return path


# ---------------------------------------------------------------------------------------------------------------------
# The project's own loader (megatron_qwen_audio.data.loader).
# ---------------------------------------------------------------------------------------------------------------------


class ProjectLoader:
    def __init__(self, loader, one_epoch: bool):
        self._loader = loader
        self._remaining = loader.steps_per_epoch(0) if one_epoch else None
        self._stream: Iterator | None = None

    def batches(self) -> Iterator[LoadedBatch]:
        if self._stream is None:
            self._stream = iter(self._loader)
        while self._remaining is None or self._remaining > 0:
            batch = next(self._stream)
            if self._remaining is not None:
                self._remaining -= 1
            # keys are "<set name>/<sample key>"
            yield LoadedBatch(keys=tuple(key.split("/", 1)[1] for key in batch.keys),
                              clip_frames=tuple(batch.mel_lengths.tolist()))

    def save_state(self) -> bytes:
        return pickle.dumps(self._loader.state_dict())

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()  # ends the loader's generator, which drops its DataLoader iterator and workers


class ProjectSide:
    """`AudioTextLoader` with SpecAugment off (energon's side does not augment either) and the same frame budget."""

    name = "project loader"

    def __init__(self, loader_module):
        self._module = loader_module
        decode_sample = loader_module.decode_sample

        def logged_decode_sample(members, entry, key):
            record_decode(entry.key)
            return decode_sample(members, entry, key)

        # The loader's workers (forked after this) decode through the module's global: count them there.
        loader_module.decode_sample = logged_decode_sample

    def prepare(self, shard_dir: Path) -> None:
        """Nothing: the loader plans from the index.json the shard builder already wrote."""

    def open(self, spec: LoaderSpec, state: bytes | None = None) -> OpenLoader:
        from megatron_qwen_audio.audio import SpecAugmentConfig
        from megatron_qwen_audio.data.loader_config import LoaderConfig
        from megatron_qwen_audio.data.shard_sets import ShardSetSpec

        per_sample = spec.frame_budget is None
        config = LoaderConfig(
            seed=spec.seed, workers=spec.num_workers, spec_augment=SpecAugmentConfig(enabled=False),
            max_batch_frames=MAX_MEL_FRAMES if per_sample else spec.frame_budget,
            max_batch_samples=1 if per_sample else LoaderConfig.max_batch_samples,
        )
        sets = [ShardSetSpec(str(directory), weight=weight) for directory, weight in spec.shard_sets]
        loader = self._module.AudioTextLoader(sets, config, dp_rank=spec.rank, dp_size=spec.world_size)
        if state is not None:
            loader.load_state_dict(pickle.loads(state))
        return ProjectLoader(loader, spec.one_epoch)


def project_loader_side() -> LoaderSide:
    """The adapter over `AudioTextLoader`: constructor, `state_dict`/`load_state_dict`, `steps_per_epoch`, batch
    `keys`/`mel_lengths`, and `decode_sample` as the module global its workers decode through."""
    return ProjectSide(importlib.import_module("megatron_qwen_audio.data.loader"))


# ---------------------------------------------------------------------------------------------------------------------
# Measurements (side-agnostic)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    main: ShardSet
    second: ShardSet  # for the mixture
    seed: int
    scratch: Path  # decode logs, blend files

    def spec(self, rank: int = 0, **changes) -> LoaderSpec:
        """The 2 ranks x 2 workers, frame-budget layout of the coverage and resume rows."""
        spec = LoaderSpec(shard_sets=((self.main.directory, 1.0),), rank=rank, world_size=DP_RANKS,
                          num_workers=WORKERS_PER_RANK, seed=self.seed, frame_budget=FRAME_BUDGET)
        return replace(spec, **changes)


Rows = dict[str, str]


def timed_first_batch(loader: OpenLoader) -> tuple[Iterator[LoadedBatch], LoadedBatch, float]:
    start = time.perf_counter()
    batches = loader.batches()
    first = next(batches)
    return batches, first, time.perf_counter() - start


def file_versions(directory: Path) -> dict[Path, tuple[int, int]]:
    versions = {}
    for path in directory.rglob("*"):
        if path.is_file():
            stat = path.stat()
            versions[path] = (stat.st_size, stat.st_mtime_ns)
    return versions


def describe_written(paths: list[Path], directory: Path) -> str:
    """Files beside the shards by suffix (`*.tar.idx x8`), files in a subfolder by that folder (`.nv-meta x5`)."""
    kinds = Counter(
        "*" + "".join(path.suffixes[-2:]) if path.parent == directory else path.relative_to(directory).parts[0]
        for path in paths
    )
    listing = ", ".join(f"{kind} x{count}" for kind, count in sorted(kinds.items()))
    return f"{listing} ({sum(path.stat().st_size for path in paths) / 1e3:.0f} kB)"


def measure_preparation(side: LoaderSide, shard_set: ShardSet) -> Rows:
    before = file_versions(shard_set.directory)
    start = time.perf_counter()
    side.prepare(shard_set.directory)
    seconds = time.perf_counter() - start
    written = [path for path, version in file_versions(shard_set.directory).items() if before.get(path) != version]
    if not written:
        return {"prepare: time": f"{seconds:.2f} s", "prepare: files written": "none"}
    tar_bytes = sum(path.stat().st_size for path in shard_set.tar_paths)
    return {
        "prepare: time": f"{seconds:.2f} s ({tar_bytes / seconds / 1e6:.0f} MB of tar/s)",
        "prepare: files written": describe_written(written, shard_set.directory),
    }


def plain_webdataset_rate(shard_set: ShardSet) -> float:
    """Reference floor: sequential tar streaming with webdataset in one DataLoader worker, same decode, nothing on
    top (what any webdataset-based loader pays at least)."""
    def to_tensors(sample: dict) -> tuple[torch.Tensor, ...]:
        decoded = decode_members(sample["__key__"], sample)
        return torch.from_numpy(decoded.mel), torch.from_numpy(decoded.tokens), torch.from_numpy(decoded.labels)

    pipeline = webdataset.WebDataset([str(path) for path in shard_set.tar_paths], shardshuffle=False,
                                     empty_check=False).map(to_tensors)
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=1, persistent_workers=True)
    items = iter(loader)
    next(items)
    start = time.perf_counter()
    for _ in range(THROUGHPUT_SAMPLES):
        next(items)
    rate = THROUGHPUT_SAMPLES / (time.perf_counter() - start)
    stop_dataloader_workers(loader)
    return rate


def measure_throughput(side: LoaderSide, workload: Workload) -> Rows:
    """Samples/s of one worker, one sample per item; the plain-webdataset floor is measured right before, so both
    numbers see the same load on the machine."""
    floor = plain_webdataset_rate(workload.main)
    loader = side.open(workload.spec(world_size=1, num_workers=1, frame_budget=None))
    try:
        batches, _, _ = timed_first_batch(loader)
        start = time.perf_counter()
        samples = sum(len(next(batches).keys) for _ in range(THROUGHPUT_SAMPLES))
        rate = samples / (time.perf_counter() - start)
    finally:
        loader.close()
    return {"read+decode, 1 worker, per sample": f"{rate:.0f} samples/s (plain wds {floor:.0f})"}


def run_rank(side: LoaderSide, spec: LoaderSpec, *, until_samples: int | None = None,
             until_batches: int | None = None) -> list[LoadedBatch]:
    """Batches of one rank: the whole (finite) epoch, or until enough samples / batches."""
    loader = side.open(spec)
    collected, samples = [], 0
    try:
        for batch in loader.batches():
            collected.append(batch)
            samples += len(batch.keys)
            if (until_samples is not None and samples >= until_samples) or (
                until_batches is not None and len(collected) >= until_batches
            ):
                break
    finally:
        loader.close()
    return collected


def coverage_text(runs: list[list[LoadedBatch]], all_keys: tuple[str, ...]) -> str:
    seen = Counter(key for run in runs for batch in run for key in batch.keys)
    repeated = sum(1 for count in seen.values() if count > 1)
    missing = len(set(all_keys) - set(seen))
    return f"{repeated} repeated, {missing} missing of {len(all_keys)}"


def measure_coverage(side: LoaderSide, workload: Workload) -> tuple[Rows, int, list[LoadedBatch]]:
    """One epoch over 2 ranks x 2 workers: in one-epoch mode (run to its end), then in training mode, where an
    epoch-equivalent is as many samples per rank as that rank received in one-epoch mode."""
    one_epoch = [run_rank(side, workload.spec(rank, one_epoch=True)) for rank in range(DP_RANKS)]
    rank_samples = [sum(len(batch.keys) for batch in run) for run in one_epoch]
    training = [run_rank(side, workload.spec(rank), until_samples=rank_samples[rank]) for rank in range(DP_RANKS)]
    batches = [batch for run in one_epoch + training for batch in run]
    sizes = [len(batch.keys) for batch in batches]
    rows = {
        "one-epoch mode: samples seen": coverage_text(one_epoch, workload.main.keys),
        "one-epoch mode: steps per rank": " / ".join(str(len(run)) for run in one_epoch)
        + f" ({' / '.join(map(str, rank_samples))} samples)",
        "training mode, 1 epoch-equiv.: samples": coverage_text(training, workload.main.keys),
        "training mode, 1 epoch-equiv.: steps": " / ".join(str(len(run)) for run in training),
        "frame budget: largest batch": f"{max(sum(batch.clip_frames) for batch in batches)} of {FRAME_BUDGET} frames",
        "frame budget: batch size min/mean/max": f"{min(sizes)} / {np.mean(sizes):.1f} / {max(sizes)}",
    }
    return rows, rank_samples[0], training[0]


def measure_determinism(side: LoaderSide, workload: Workload, reference: list[LoadedBatch]) -> Rows:
    again = run_rank(side, workload.spec(0), until_batches=CONTINUATION_BATCHES)
    other = run_rank(side, workload.spec(0, seed=workload.seed + 1), until_batches=CONTINUATION_BATCHES)
    expected = [batch.keys for batch in reference[:CONTINUATION_BATCHES]]
    return {"same seed: same first batches": "yes" if [b.keys for b in again] == expected else "NO",
            "other seed: different batches": "yes" if [b.keys for b in other] != expected else "NO"}


def measure_resume(side: LoaderSide, workload: Workload, rank_samples: int) -> Rows:
    """Run rank 0 to 90% of its epoch, save, take the next batches as the reference; restore in a fresh loader and
    compare. Replayed samples: decodes by the restored loader (until its first batch) of samples the first run had
    already consumed, beyond the first run's own later decodes of them. Those later decodes are next-epoch reads,
    which a small shard set reaches early through the loaders' read-ahead buffers; a restore that needs no replay
    decodes a consumed sample at most as often as the uninterrupted run did after consuming it."""
    spec = workload.spec(0)
    consumed: set[str] = set()
    with decode_log(workload.scratch) as first_run_decodes:
        loader = side.open(spec)
        batches, first, fresh_seconds = timed_first_batch(loader)
        fresh_decodes = len(first_run_decodes())
        consumed.update(first.keys)
        while len(consumed) < RESUME_AT_EPOCH_FRACTION * rank_samples:
            consumed.update(next(batches).keys)
        state = loader.save_state()
        reference = [next(batches).keys for _ in range(CONTINUATION_BATCHES)]
        loader.close()
        first_run_counts = Counter(first_run_decodes())
    with decode_log(workload.scratch) as restored_decodes:
        restored = side.open(spec, state)
        batches, first, restored_seconds = timed_first_batch(restored)
        decoded_for_first = restored_decodes()
        continuation = [first.keys] + [next(batches).keys for _ in range(CONTINUATION_BATCHES - 1)]
        restored.close()
    restored_counts = Counter(decoded_for_first)
    replayed = sum(max(0, restored_counts[key] - (first_run_counts[key] - 1)) for key in consumed)
    return {
        "saved state size": f"{len(state) / 1e3:.1f} kB",
        "first batch: fresh / restored": f"{fresh_seconds:.2f} s / {restored_seconds:.2f} s",
        "decodes until 1st batch: fresh / restored": f"{fresh_decodes} / {len(decoded_for_first)}",
        "restore decoded already-consumed samples": f"{replayed} (of {len(consumed)} consumed)",
        f"next {CONTINUATION_BATCHES} batches identical after restore": "yes" if continuation == reference else "NO",
    }


def measure_mixture(side: LoaderSide, workload: Workload) -> Rows:
    """Blend the main set and the second set 3:1 (one rank, 2 workers, one sample per item): the share drawn, and
    whether the blended position survives save/restore."""
    spec = LoaderSpec(
        shard_sets=((workload.main.directory, BLEND_WEIGHTS[0]), (workload.second.directory, BLEND_WEIGHTS[1])),
        rank=0, world_size=1, num_workers=WORKERS_PER_RANK, seed=workload.seed, frame_budget=None,
    )
    loader = side.open(spec)
    batches = loader.batches()
    drawn = [key for _ in range(BLEND_SAMPLES_BEFORE_SAVE) for key in next(batches).keys]
    state = loader.save_state()
    reference = [next(batches).keys for _ in range(BLEND_CONTINUATION_SAMPLES)]
    loader.close()
    restored = side.open(spec, state)
    batches = restored.batches()
    continuation = [next(batches).keys for _ in range(BLEND_CONTINUATION_SAMPLES)]
    restored.close()
    second_keys = set(workload.second.keys)
    share = sum(1 for key in drawn if key in second_keys) / len(drawn)
    return {
        "mixture 3:1: share of the 2nd set": f"{share:.3f} (weight {BLEND_WEIGHTS[1] / sum(BLEND_WEIGHTS):.3f}, "
                                             f"first {len(drawn)})",
        "mixture: identical after restore": "yes" if continuation == reference else "NO",
    }


def measure_side(side: LoaderSide, workload: Workload) -> Rows:
    rows = measure_preparation(side, workload.main)
    side.prepare(workload.second.directory)
    rows.update(measure_throughput(side, workload))
    coverage, rank0_samples, rank0_training = measure_coverage(side, workload)
    rows.update(coverage)
    rows.update(measure_determinism(side, workload, rank0_training))
    rows.update(measure_resume(side, workload, rank0_samples))
    rows.update(measure_mixture(side, workload))
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------------


def print_table(columns: dict[str, Rows]) -> None:
    labels = list(dict.fromkeys(label for rows in columns.values() for label in rows))
    label_width = max(map(len, labels))
    widths = {name: max([len(name)] + [len(value) for value in rows.values()])
              for name, rows in columns.items()}
    print(" | ".join([" " * label_width] + [name.ljust(widths[name]) for name in columns]))
    print("-+-".join(["-" * label_width] + ["-" * widths[name] for name in columns]))
    for label in labels:
        cells = [rows.get(label, "-").ljust(widths[name]) for name, rows in columns.items()]
        print(" | ".join([label.ljust(label_width)] + cells))


def build_workload(root: Path, *, shards: int, samples_per_shard: int, seed: int) -> Workload:
    rng = np.random.default_rng(seed)
    main = write_synthetic_shard_set(root / "main", num_shards=shards, samples_per_shard=samples_per_shard,
                                     first_line=1, rng=rng)
    second = write_synthetic_shard_set(root / "second", num_shards=2, samples_per_shard=100,
                                       first_line=len(main.keys) + 1, rng=rng)
    scratch = root / "scratch"
    scratch.mkdir()
    return Workload(main=main, second=second, seed=seed, scratch=scratch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=8, help="shards in the main synthetic set")
    parser.add_argument("--samples-per-shard", type=int, default=250)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*pin_memory.*")  # energon asks for pinned memory; no accelerator
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="compare-loaders-") as root:
        start = time.perf_counter()
        workload = build_workload(Path(root), shards=args.shards, samples_per_shard=args.samples_per_shard,
                                  seed=args.seed)
        tar_mb = sum(path.stat().st_size for path in workload.main.tar_paths) / 1e6
        print(f"synthetic shards: {args.shards} x {args.samples_per_shard} samples ({tar_mb:.0f} MB), mel frames "
              f"{MIN_MEL_FRAMES}..{MAX_MEL_FRAMES}; mixture set 2 x 100; written in {time.perf_counter() - start:.1f} s")
        print("training mode never ends an epoch; one epoch-equivalent = as many samples per rank as that rank got "
              "in one-epoch mode (energon's own epochs are per worker: each worker's pass over its sample slices)")
        print(f"coverage/resume layout: {DP_RANKS} ranks x {WORKERS_PER_RANK} workers, <= {FRAME_BUDGET} mel frames "
              f"per batch, seed {args.seed}; energon: shuffle buffer {ENERGON_SHUFFLE_BUFFER}, "
              f"max_samples_per_sequence {ENERGON_SAMPLES_PER_SEQUENCE}, packing buffer {ENERGON_PACKING_BUFFER}")

        sides: list[LoaderSide] = [EnergonSide(checkpoint_every_sec=60), EnergonSide(checkpoint_every_sec=0),
                                   project_loader_side()]
        columns: dict[str, Rows] = {}
        for side in sides:
            side_start = time.perf_counter()
            columns[side.name] = measure_side(side, workload)
            print(f"{side.name}: measured in {time.perf_counter() - side_start:.0f} s")
        print()
        print_table(columns)
        print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
