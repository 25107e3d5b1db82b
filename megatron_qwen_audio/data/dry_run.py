"""`mqa-loader-dry-run`: read whole epochs of shard sets through the training loader, without a model.

Before spending GPU hours a user wants to see what the loader will feed each rank under a batching budget: steps per
epoch, samples and target tokens per step, how much of the padded token tensor is real, what the remainder policy
drops, and whether the data workers keep up. Every simulated rank reads its own share, exactly as in training.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from megatron_qwen_audio.data.collate import AudioTextBatch
from megatron_qwen_audio.data.loader import AudioTextLoader
from megatron_qwen_audio.data.loader_config import LoaderConfig
from megatron_qwen_audio.data.shard_sets import ShardSetSpec

PROGRAM = "mqa-loader-dry-run"


@dataclass
class EpochTally:
    steps: int = 0
    samples: int = 0
    target_tokens: int = 0
    token_positions: int = 0  # the padded `tokens` tensors' sizes
    real_positions: int = 0  # positions not holding the pad id (Qwen pads with <|endoftext|>, which inputs never hold)
    audio_seconds: float = 0.0
    clips: int = 0

    def add(self, batch: AudioTextBatch, pad_token_id: int) -> None:
        self.steps += 1
        self.samples += batch.num_samples
        self.target_tokens += batch.num_target_tokens
        self.token_positions += batch.tokens.numel()
        self.real_positions += int((batch.tokens != pad_token_id).sum())
        self.audio_seconds += batch.audio_seconds
        self.clips += len(batch.mel_lengths)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", help="shard set folders or URL prefixes (holding index.json)")
    parser.add_argument("--weights", type=float, nargs="+", default=None, help="mixture weight of each set")
    parser.add_argument("--dp-size", type=int, default=1, help="data-parallel ranks to simulate (default 1)")
    parser.add_argument("--epochs", type=int, default=1)
    defaults = LoaderConfig()
    for name in ("workers", "seed", "max_batch_tokens", "max_batch_frames", "max_batch_samples", "shuffle_buffer",
                 "batching_pool"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name),
                            help=f"LoaderConfig.{name} (default {getattr(defaults, name)})")
    parser.add_argument("--pack-sequences", action="store_true", help="LoaderConfig.pack_sequences: one packed row "
                        "per batch, max-batch-tokens bounding the summed sequences")
    args = parser.parse_args(argv)
    config = LoaderConfig(**{name: getattr(args, name) for name in (
        "workers", "seed", "max_batch_tokens", "max_batch_frames", "max_batch_samples", "shuffle_buffer",
        "batching_pool", "pack_sequences")})
    weights = args.weights or [1.0] * len(args.sets)
    if len(weights) != len(args.sets):
        parser.error(f"--weights has {len(weights)} values for {len(args.sets)} sets")
    sets = [ShardSetSpec(root, weight) for root, weight in zip(args.sets, weights)]
    try:
        loaders = [AudioTextLoader(sets, config, rank, args.dp_size) for rank in range(args.dp_size)]
    except (ValueError, FileNotFoundError) as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    for epoch in range(args.epochs):
        plan = loaders[0].plan(epoch)
        print(f"epoch {epoch}: {plan.steps_per_rank} steps per rank, {plan.num_samples} samples planned, "
              f"{len(plan.dropped)} dropped by the remainder policy")
        for rank, loader in enumerate(loaders):
            tally, started = EpochTally(), time.perf_counter()
            batches = iter(loader)
            for _ in range(loader.steps_per_epoch(epoch)):
                tally.add(next(batches), config.pad_token_id)
            seconds = time.perf_counter() - started
            print(f"  rank {rank}: {tally.steps} steps, {tally.samples} samples ({tally.samples / tally.steps:.1f}"
                  f"/step), {tally.clips} clips, {tally.audio_seconds / 3600:.2f} h audio, {tally.target_tokens} "
                  f"target tokens, {tally.real_positions / tally.token_positions:.0%} of token positions real; "
                  f"read in {seconds:.1f} s ({tally.samples / seconds:.0f} samples/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
