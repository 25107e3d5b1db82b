"""Greedy decoding one prompt at a time against batches of prompts (issue: main job; `mqa-eval --batch-size`).

Builds a stage config's model at TP=1, PP=1 with random weights (default configs/demo_gpu/stage2.yaml: the GPU demo's
model), makes `--samples` synthetic transcription prompts (bench_step_gpu.synthetic_samples: one clip of a uniform
2-30 s each), and decodes them all, in consecutive batches, at each of `--batch-sizes`. No stop token ends a
hypothesis early (random weights would end them at random), so every prompt decodes exactly `--new-tokens` tokens and
the work is the same at every batch size.

Reported per batch size: seconds for all prompts, prompts/s, new tokens/s, the speed-up over the first batch size in
the list, and how many prompts got the same tokens as at that first size (all of them in fp32; bf16 rounding may flip
a near-tie).

Run: `python benchmarks/bench_decode.py [--device cuda] [--config FILE] [--samples 64] [--batch-sizes 1,16,64]
[--new-tokens 32] [--out FILE.json]`; on the CPU runtime: `--device cpu --config configs/demo/stage2.yaml`.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_step_gpu import REPO, SEED, device_name, publish, synthetic_samples

from megatron_qwen_audio.evaluation.decoding import decoding_prompt, split_prompt
from megatron_qwen_audio.inference.greedy import Prompt, greedy_decode_batch
from megatron_qwen_audio.inference.single_process import single_process_model
from megatron_qwen_audio.runtime.parallel import shutdown_parallel
from megatron_qwen_audio.training.config import load_config


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo_gpu" / "stage2.yaml",
                        help="stage config whose model is built (random weights)")
    parser.add_argument("--samples", type=int, default=64, help="prompts decoded at every batch size")
    parser.add_argument("--batch-sizes", default="1,16,64", help="comma-separated; the first is the baseline")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens decoded per prompt")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    return parser.parse_args(argv)


def timed_decoding(model, prompts: list[Prompt], batch_size: int, new_tokens: int,
                   device: torch.device) -> tuple[float, list[list[int]]]:
    """Seconds to decode every prompt in consecutive batches of `batch_size` (device synchronised), and the tokens."""
    warm_up = prompts[:batch_size]
    greedy_decode_batch(model, warm_up, [new_tokens] * len(warm_up))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    tokens = []
    for first in range(0, len(prompts), batch_size):
        batch = prompts[first: first + batch_size]
        tokens += greedy_decode_batch(model, batch, [new_tokens] * len(batch))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started, tokens


def main(argv: list[str] | None = None) -> dict:
    args = parse_arguments(argv)
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    name = device_name(args.device)  # before the CPU runtime stubs torch.cuda
    model, device = single_process_model(load_config(args.config).model, args.device)
    precision = "bf16" if next(model.parameters()).dtype == torch.bfloat16 else "fp32"
    samples = synthetic_samples(args.samples, SEED)
    prompts = [decoding_prompt(sample, split_prompt(sample)[0], device) for sample in samples]
    runs, baseline = [], None
    for batch_size in batch_sizes:
        seconds, tokens = timed_decoding(model, prompts, batch_size, args.new_tokens, device)
        baseline = baseline or (seconds, tokens)
        runs.append({"batch_size": batch_size, "seconds": seconds, "prompts_per_s": len(prompts) / seconds,
                     "new_tokens_per_s": len(prompts) * args.new_tokens / seconds,
                     "speedup": baseline[0] / seconds,
                     "same_tokens": sum(a == b for a, b in zip(tokens, baseline[1]))})
    shutdown_parallel()
    result = {"device": name, "config": str(args.config), "precision": precision,
              "prompts": len(prompts), "prompt_tokens": sum(len(prompt.tokens) for prompt in prompts),
              "new_tokens": args.new_tokens, "runs": runs}
    lines = [f"device: {name}; model of {args.config} ({result['precision']}, random weights); {len(prompts)} prompts "
             f"({result['prompt_tokens']:,} prompt tokens), {args.new_tokens} new tokens each",
             "| batch size | seconds | prompts/s | new tokens/s | speed-up | same tokens as batch size "
             f"{batch_sizes[0]} |", "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {run['batch_size']} | {run['seconds']:.2f} | {run['prompts_per_s']:.1f} | "
              f"{run['new_tokens_per_s']:.0f} | {run['speedup']:.2f}x | {run['same_tokens']} of {len(prompts)} |"
              for run in runs]
    publish(result, lines, args.out)
    return result


if __name__ == "__main__":
    main()
