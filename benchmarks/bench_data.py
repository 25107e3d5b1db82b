"""Data-path figures, measured in one run on real speech (Debian's Asterisk prompts, joined into 2-30 s clips):

1. shard-builder throughput in audio-seconds per CPU-second for one worker, against the baseline a user would write
   (soundfile decode + the default call of transformers.WhisperFeatureExtractor per clip), both single-threaded;
2. loader samples/s for one DataLoader worker with SpecAugment on, over an epoch of the built shards;
3. the time to restore a loader position late in an epoch, next to the time a fresh loader takes to its first batch;
   and, since a restore (like every epoch start) recomputes the epoch plan, the plan time at cluster scale: an index
   of 1M samples (lengths drawn from the built shards) over 256 ranks x 2 workers.

Targets (issue: data path): builder >= 3x the baseline and >= 1000 audio-s per CPU-s; loader >= 500 samples/s per
worker. Run: `python benchmarks/bench_data.py [--clips 400] [--baseline-clips 60]`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
from transformers import WhisperFeatureExtractor

from data_prep.asterisk import LANGUAGES, SOUNDS_DIR, wav_package
from data_prep.build_shards import assemble, builder_version, plan_shards
from data_prep.debian_packages import fetch_debian_packages
from data_prep.manifest import scan_manifest
from data_prep.shard_writer import BuildSettings, build_shard
from megatron_qwen_audio.audio import SAMPLE_RATE, load_audio
from megatron_qwen_audio.data.epoch_plan import EpochPlanner
from megatron_qwen_audio.data.loader import AudioTextLoader
from megatron_qwen_audio.data.loader_config import LoaderConfig
from megatron_qwen_audio.data.shard_format import SampleEntry, ShardEntry, ShardSetIndex, sample_key, shard_name
from megatron_qwen_audio.data.shard_sets import DEFAULT_URL_TEMPLATE, ShardSet, ShardSetSpec
from megatron_qwen_audio.text.fetch import default_cache_dir
from megatron_qwen_audio.text.tokenizer import QwenTokenizer


def make_clips(out_dir: Path, count: int, seed: int) -> list[dict]:
    """`count` 16 kHz WAV clips of uniform 2-30 s length, each real prompts of one language joined end to end."""
    root = fetch_debian_packages([wav_package(language) for language in LANGUAGES], default_cache_dir() / "debian")
    recordings = {language: sorted((root / SOUNDS_DIR).glob(f"{language}_*/**/*.wav")) for language in LANGUAGES}
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        language = rng.choice(LANGUAGES)
        target = int(rng.uniform(2.0, 30.0) * SAMPLE_RATE)
        pieces, length = [], 0
        while length < target:
            piece = load_audio(rng.choice(recordings[language]))
            pieces.append(piece)
            length += len(piece)
        wave = np.concatenate(pieces)[:target]
        path = out_dir / f"clip{index:05d}.wav"
        soundfile.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
        words = " ".join(rng.choice(["hello", "world", "please", "enter", "your", "number"])
                         for _ in range(max(1, round(3 * target / SAMPLE_RATE))))
        rows.append({"id": f"clip{index}", "audio": path.name, "task": "transcribe", "audio_lang": language,
                     "text_lang": language, "text": words, "seconds": target / SAMPLE_RATE})
    return rows


def baseline_rate(rows: list[dict], clip_dir: Path) -> float:
    """Audio-seconds per CPU-second of soundfile decode + WhisperFeatureExtractor's default call, clip by clip."""
    extractor = WhisperFeatureExtractor(feature_size=80)
    start = time.process_time()
    for row in rows:
        wave, rate = soundfile.read(clip_dir / row["audio"], dtype="float32")
        extractor(wave, sampling_rate=rate)
    return sum(row["seconds"] for row in rows) / (time.process_time() - start)


def build_rate(manifest: Path, out_dir: Path, tokenizer: QwenTokenizer, samples_per_shard: int) -> float:
    """Audio-seconds per CPU-second of the shard builder's per-shard work (decode, resample, log-mel, tokenise, tar)
    in this process, i.e. one worker; the tokenizer is loaded once per worker, so it is not counted."""
    layout = scan_manifest(manifest, samples_per_shard)
    settings = BuildSettings(manifest_sha256=layout.sha256, manifest_lines=layout.lines,
                             samples_per_shard=samples_per_shard, max_tokens=2048,
                             tokenizer_fingerprint=tokenizer.fingerprint, builder_version=builder_version())
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = plan_shards(manifest, out_dir, layout, settings)
    start = time.process_time()
    records = [build_shard(task, tokenizer) for task in tasks]
    elapsed = time.process_time() - start
    index = assemble(out_dir, records, settings)
    assert index.rejected == 0, f"benchmark clips were rejected: see {out_dir}"
    return index.hours * 3600 / elapsed


def loader_figures(shard_dir: Path) -> dict:
    """Samples/s of one worker over an epoch (after its first batch), and restore-to-first-batch times."""
    config = LoaderConfig(workers=1, max_batch_tokens=8192, max_batch_frames=24000, max_batch_samples=16,
                          shuffle_buffer=100, batching_pool=100)
    loader = AudioTextLoader([ShardSetSpec(str(shard_dir))], config, dp_rank=0, dp_size=1)
    steps = loader.steps_per_epoch(0)
    batches = iter(loader)
    started = time.perf_counter()
    next(batches)
    first_batch = time.perf_counter() - started
    started, samples = time.perf_counter(), 0
    for _ in range(steps - 2):
        samples += next(batches).num_samples
    rate = samples / (time.perf_counter() - started)

    late_step = int(0.9 * steps)
    state = {**loader.state_dict(), "epoch": 0, "step": late_step}  # the position a checkpoint late in epoch 0 holds
    started = time.perf_counter()
    restored = AudioTextLoader([ShardSetSpec(str(shard_dir))], config, dp_rank=0, dp_size=1)
    restored.load_state_dict(state)
    next(iter(restored))
    restore = time.perf_counter() - started
    return {"steps": steps, "samples_per_s": rate, "fresh_first_batch_s": first_batch, "restore_first_batch_s": restore,
            "restore_step": late_step}


def plan_figures(shard_dir: Path, samples: int, shards: int, dp_size: int, workers: int) -> dict:
    """Plan time and dropped share for an index of `samples` samples whose lengths are drawn from the built set."""
    built = ShardSetIndex.read(shard_dir)
    lengths = [(sample.frames, sample.tokens) for shard in built.shards for sample in shard.samples]
    rng = random.Random(0)
    entries, line = [], 1
    for shard_index in range(shards):
        entry = ShardEntry(name=shard_name(shard_index), first_line=line, last_line=line + samples // shards - 1)
        for _ in range(samples // shards):
            frames, tokens = rng.choice(lengths)
            entry.samples.append(SampleEntry(key=sample_key(line), frames=frames, tokens=tokens, task="transcribe"))
            line += 1
        entries.append(entry)
    index = dataclasses.replace(built, shards=entries, manifest_lines=line - 1)
    shard_set = ShardSet("large", 1.0, "memory", DEFAULT_URL_TEMPLATE, index)
    config = LoaderConfig(workers=workers)
    started = time.perf_counter()
    planner = EpochPlanner([shard_set], config, dp_size)
    setup = time.perf_counter() - started
    started = time.perf_counter()
    plan = planner.plan(0)
    return {"setup_s": setup, "plan_s": time.perf_counter() - started, "steps": plan.steps_per_rank,
            "dropped": len(plan.dropped) / (len(plan.dropped) + plan.num_samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=400, help="clips built into shards and read by the loader")
    parser.add_argument("--baseline-clips", type=int, default=60, help="clips the slow baseline processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = QwenTokenizer.from_file()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        clip_dir = scratch / "clips"
        clip_dir.mkdir()
        rows = make_clips(clip_dir, args.clips, args.seed)
        manifest = clip_dir / "manifest.jsonl"
        manifest.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "seconds"}) + "\n"
                                    for row in rows))
        audio_seconds = sum(row["seconds"] for row in rows)

        baseline = baseline_rate(rows[: args.baseline_clips], clip_dir)
        ours = build_rate(manifest, scratch / "shards", tokenizer, samples_per_shard=50)
        loader = loader_figures(scratch / "shards")
        large = plan_figures(scratch / "shards", samples=1_000_000, shards=1000, dp_size=256, workers=2)

    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, single-threaded builder and baseline")
    print(f"clips: {args.clips} real-speech clips, uniform 2-30 s, {audio_seconds / 3600:.2f} h at 16 kHz")
    print(f"baseline (soundfile + WhisperFeatureExtractor default call), {args.baseline_clips} clips: "
          f"{baseline:8.0f} audio-s per CPU-s")
    print(f"shard builder, one worker:                       {ours:8.0f} audio-s per CPU-s "
          f"({ours / baseline:.1f}x baseline; targets >= 3x and >= 1000)")
    print(f"loader, one worker, SpecAugment on:               {loader['samples_per_s']:8.0f} samples/s "
          f"over {loader['steps']} steps (target >= 500)")
    print(f"loader first batch: fresh {loader['fresh_first_batch_s']:.2f} s; restored at step "
          f"{loader['restore_step']}/{loader['steps']} {loader['restore_first_batch_s']:.2f} s")
    print(f"epoch plan, 1M samples in 1000 shards over 256 ranks x 2 workers: set-up {large['setup_s']:.1f} s, "
          f"plan {large['plan_s']:.1f} s (each epoch start and each restore), {large['steps']} steps per rank, "
          f"{large['dropped']:.1%} dropped by the remainder policy")


if __name__ == "__main__":
    main()
