"""Training-step figures on one device (issue: training engine): the real model shape, cut to a few decoder layers.

For stage 1 (configs/qwen_audio_7b_stage1.yaml: encoder trains, LLM frozen) and stage 2
(configs/qwen_audio_7b_stage2_sft.yaml: LLM trains, encoder frozen) the script builds the model, freeze masks, DDP
wrapper and distributed optimizer the way `Trainer` does, at TP=1, PP=1 in one process, and times `train_step` over
one fixed global batch. It prints seconds per step, decoder positions/s, audio-seconds/s, useful model TFLOP/s (the
trainer's own count, `StepFlops`: real frames and tokens, each module's role under the stage's masks), peak device
memory next to the
`mqa-train --plan` estimate, and a plain matmul's TFLOP/s measured in the same run, so the model figure reads as a
fraction of what the device delivers at all.

The batch is synthetic, but laid out by the project's data path: N clips of random log-mel (seeded) with durations
uniform in 2-30 s, each made an ASR sample by the tag builder (`build_sequence`, task transcribe) with a transcript
of about 3 tokens per audio-second, collated by `collate`, and cut into micro-batches by the loader's length budget
(`cut_batches` under data.loader.max_batch_*, at half the training budget: see BUDGET_OVERRIDES); one optimizer step
runs all of them. Weights are random (init_from is not read): the figures depend on shapes only.

Run: `python benchmarks/bench_step_gpu.py [--layers 4] [--clips 64] [--steps 10] [--warmup 3] [--out FILE.json]`
(sized to finish in a few minutes on one H100 or H200). `--device cpu --preset tiny` runs the same path on the CPU
runtime in about half a minute (the test does). `--set KEY=VALUE` adds config overrides to both stages,
e.g. `--set data.loader.max_batch_tokens=16384 --set data.loader.max_batch_frames=36000` for the training budget.
"""
from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from megatron_qwen_audio.audio.features import N_MELS
from megatron_qwen_audio.audio.lengths import SAMPLE_RATE, encoder_frame_count, mel_frame_count
from megatron_qwen_audio.data.collate import AudioTextBatch, collate
from megatron_qwen_audio.data.length_batching import SampleSize, cut_batches
from megatron_qwen_audio.data.loader_config import LoaderConfig
from megatron_qwen_audio.data.sample_decoding import DecodedSample
from megatron_qwen_audio.model.decoder_spec import transformer_config
from megatron_qwen_audio.model.encoder_tensor_parallel import finalize_model_grads
from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel
from megatron_qwen_audio.runtime.parallel import initialize_parallel, shutdown_parallel
from megatron_qwen_audio.text.special_tokens import base_vocab_size, special_tokens
from megatron_qwen_audio.text.tags import build_sequence
from megatron_qwen_audio.text.tokenizer import SpecialTokenIds
from megatron_qwen_audio.training.config import TrainConfig, load_config, validate
from megatron_qwen_audio.training.lr_schedule import LRScheduler
from megatron_qwen_audio.training.memory_plan import GIB, memory_plan
from megatron_qwen_audio.training.optimizer import build_optimizer, wrap_ddp
from megatron_qwen_audio.training.train_step import model_inputs, train_step
from megatron_qwen_audio.training.trainer import StepFlops, apply_stage

REPO = Path(__file__).resolve().parents[1]
STAGE_CONFIGS = (REPO / "configs" / "qwen_audio_7b_stage1.yaml", REPO / "configs" / "qwen_audio_7b_stage2_sft.yaml")
SEED = 1234
MIN_SECONDS, MAX_SECONDS = 2.0, 30.0
TOKENS_PER_AUDIO_SECOND = 3  # a transcript's length: ~150 spoken words a minute, ~1.2 BPE tokens a word
MATMUL_ITERATIONS = 50  # about 0.1 s of bf16 8192^3 on an H100, well above the timer's and launches' noise
# Half the loader's training budget (16,384 positions, 36,000 mel frames): at TP=1 one GPU keeps the activations of
# all 32 encoder blocks for the batch's clips (padded to its longest), which at the full budget, with the 155,947-row
# logits and their fp32 copy, comes close to 80 GB. Half is also what each GPU encodes at the configs' TP=2, where
# the TP ranks split the clips. `--set` overrides it.
BUDGET_OVERRIDES = ("data.loader.max_batch_tokens=8192", "data.loader.max_batch_frames=18000")


@dataclass(frozen=True)
class DeviceDefaults:
    """Defaults per device: the GPU run measures the real shape; the CPU run (tiny preset) only has to finish fast,
    and the CPU runtime computes in fp32, where an 8192^3 matmul alone would take minutes."""

    clips: int
    steps: int
    warmup: int
    matmul_size: int


DEVICE_DEFAULTS = {"cuda": DeviceDefaults(clips=64, steps=10, warmup=3, matmul_size=8192),
                   "cpu": DeviceDefaults(clips=1, steps=2, warmup=1, matmul_size=1024)}


class _IdTranscripts(SpecialTokenIds):
    """The released special-token ids, reading a transcript as space-separated token ids. It stands in for the BPE
    tokenizer so the tag builder lays out real ASR sequences without the tokenizer's ranks file (a bare GPU machine
    has none); the tag builder asks for nothing else."""

    def __init__(self) -> None:
        self._special = dict(special_tokens())

    def encode(self, text: str) -> list[int]:
        return [int(word) for word in text.split()]


def synthetic_samples(clips: int, seed: int) -> list[DecodedSample]:
    """`clips` ASR samples: random log-mel of a uniform 2-30 s duration, a random transcript of its length."""
    rng = np.random.default_rng(seed)
    tokenizer = _IdTranscripts()
    samples = []
    for index in range(clips):
        seconds = rng.uniform(MIN_SECONDS, MAX_SECONDS)
        frames = mel_frame_count(int(seconds * SAMPLE_RATE))
        transcript = rng.integers(0, base_vocab_size(), round(TOKENS_PER_AUDIO_SECOND * seconds))
        sequence = build_sequence({"task": "transcribe", "audio_lang": "en", "text_lang": "en",
                                   "text": " ".join(map(str, transcript))}, [frames], [seconds], tokenizer)
        mel = rng.standard_normal((N_MELS, frames), dtype=np.float32).astype(np.float16)
        samples.append(DecodedSample(f"synthetic/{index}", sequence.input_ids, sequence.labels, [mel]))
    return samples


def micro_batches(samples: list[DecodedSample], loader: LoaderConfig) -> list[AudioTextBatch]:
    """The samples sorted by length and cut under the loader's budget, as the loader cuts a pool, then collated
    (packed into one row per micro-batch with data.loader.pack_sequences)."""
    def size(sample: DecodedSample) -> SampleSize:
        return SampleSize(len(sample.tokens) - 1, sum(mel.shape[1] for mel in sample.mels))

    return [collate(batch, loader.pad_token_id, ["transcribe"] * len(batch), pack=loader.pack_sequences)
            for batch in cut_batches(sorted(samples, key=size), size, loader.batch_budget())]


def stage_config(path: Path, preset: str, layers: int, device: str, overrides: list[str]) -> TrainConfig:
    """A stage's config at TP=1, PP=1 with the decoder cut to `layers`, checked as `mqa-train` checks it (the
    precision is the config's on GPU, bf16, and fp32 on the CPU runtime, the only one it computes in)."""
    cpu_precision = ["parallel.precision=fp32"] if device == "cpu" else []
    config = load_config(path, [f"model.preset={preset}", f"model.layers={layers}", "parallel.tensor_parallel=1",
                                "parallel.pipeline_parallel=1", "parallel.stage_layers=null",
                                f"parallel.device={device}", *cpu_precision, *BUDGET_OVERRIDES, *overrides])
    validate(config, world_size=1, check_data=False)
    return config


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(size: int, dtype: torch.dtype, device: torch.device) -> float:
    """TFLOP/s of a square `size`^3 matmul in `dtype`: what the device delivers on the simplest dense work."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    for _ in range(3):
        torch.matmul(a, b)
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(MATMUL_ITERATIONS):
        torch.matmul(a, b)
    _synchronize(device)
    return 2.0 * size**3 * MATMUL_ITERATIONS / (time.perf_counter() - started) / 1e12


def run_stage(config: TrainConfig, batches: list[AudioTextBatch], steps: int, warmup: int) -> dict:
    """Build the stage as `Trainer.__init__` does (model, freeze masks, DDP, optimizer, schedule), run `warmup`
    untimed and `steps` timed optimizer steps over `batches`, and return the stage's figures."""
    parallel = config.parallel
    layout = initialize_parallel(parallel.tensor_parallel, parallel.pipeline_parallel, parallel.device, config.seed)
    device = torch.device("cuda", torch.cuda.current_device()) if layout.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = QwenAudioModel(config.model, transformer_config(config.model, parallel, layout.device))
    report = apply_stage(model, config, layout)
    flop_counter = StepFlops(model, config.model, report, count_encoder=layout.tensor_parallel_rank == 0)
    step_flops = flop_counter(batches)
    chunks = wrap_ddp([model])
    model.config.finalize_model_grads_func = finalize_model_grads
    optimizer = build_optimizer(chunks, config.optimizer, parallel.resolved_precision(layout.device))
    scheduler = LRScheduler(optimizer, config.optimizer, config.steps)

    def step() -> float:
        result = train_step(chunks, optimizer, [model_inputs(batch, device) for batch in batches])
        scheduler.step()
        return result.loss.mean

    seconds, losses = timed_steps(step, steps, warmup, device)
    totals = report.totals
    return {
        "stage": config.stage.name,
        "trainable_parameters": totals.trainable,
        "frozen_parameters": totals.frozen,
        "flop_roles": {name: role.value for name, role in flop_counter.roles.items()},
        "flops_per_step": step_flops,
        "seconds_per_step": seconds,
        "tokens_per_s": sum(batch.tokens.numel() for batch in batches) / seconds,
        "audio_seconds_per_s": sum(batch.audio_seconds for batch in batches) / seconds,
        "tflops": step_flops / seconds / 1e12,
        "last_loss": losses[-1],
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None,
        "planned_memory_gib": memory_plan(config, world_size=1)[0].total_bytes / GIB,
    }


def timed_steps(step: Callable[[], float], steps: int, warmup: int, device: torch.device) -> tuple[float, list[float]]:
    """Run `warmup` untimed, then `steps` timed calls of `step` (returning its loss) with the device synchronised
    around them: seconds per step and the timed losses."""
    for _ in range(warmup):
        step()
    _synchronize(device)
    started = time.perf_counter()
    losses = [step() for _ in range(steps)]
    _synchronize(device)
    return (time.perf_counter() - started) / steps, losses


def release_stage() -> None:
    """Drop megatron's layout and the stage's tensors so the next stage starts from an empty device."""
    from megatron.core import parallel_state

    parallel_state.destroy_model_parallel()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def batch_figures(batches: list[AudioTextBatch]) -> dict:
    """What one step processes, the same for both stages."""
    return {
        "clips": sum(len(batch.mel_lengths) for batch in batches),
        "micro_batches": len(batches),
        "positions_per_step": sum(batch.tokens.numel() for batch in batches),
        "target_tokens_per_step": sum(batch.num_target_tokens for batch in batches),
        "encoder_frames_per_step": sum(encoder_frame_count(int(frames)) for batch in batches
                                       for frames in batch.mel_lengths),
        # what the useful-FLOP count reads (StepFlops): real lengths, without the batches' padding
        "clip_frames": [int(frames) for batch in batches for frames in batch.mel_lengths],
        "sequence_lengths": [length for batch in batches for length in batch.sequence_lengths],
        "audio_seconds_per_step": sum(batch.audio_seconds for batch in batches),
    }


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else "cpu (the project's CPU runtime)"


def report_lines(result: dict) -> list[str]:
    """The figures as the lines the script prints."""
    batch, matmul = result["batch"], result["matmul"]
    lines = [f"device: {result['device']}; preset {result['preset']}, {result['layers']} decoder layers, TP=1 PP=1",
             f"step: {batch['clips']} clips ({batch['audio_seconds_per_step']:.0f} audio-s) in "
             f"{batch['micro_batches']} micro-batches, {batch['positions_per_step']:,} decoder positions, "
             f"{batch['encoder_frames_per_step']:,} encoder frames",
             f"matmul {matmul['size']}^3 {matmul['dtype']}: {matmul['tflops']:.2f} TFLOP/s"]
    for stage in result["stages"]:
        memory = "-" if stage["peak_memory_gib"] is None else f"{stage['peak_memory_gib']:.1f}"
        lines.append(
            f"{stage['stage']}: {result['steps']} steps timed, {stage['seconds_per_step']:.3f} s/step, "
            f"{stage['tokens_per_s']:,.0f} tokens/s, {stage['audio_seconds_per_s']:,.1f} audio-s/s, "
            f"{stage['tflops']:.2f} model TFLOP/s ({stage['fraction_of_matmul']:.1%} of the matmul), peak memory "
            f"{memory} GiB (plan {stage['planned_memory_gib']:.1f}), trainable {stage['trainable_parameters']:,} of "
            f"{stage['trainable_parameters'] + stage['frozen_parameters']:,} parameters, loss {stage['last_loss']:.3f}")
    return lines


def benchmark_parser(description: str) -> argparse.ArgumentParser:
    """The options every one-device benchmark takes: device, preset, config overrides, output file."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--preset", default="qwen_audio_7b", help="model preset (tiny: the CPU-sized model)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for both stages, e.g. data.loader.max_batch_tokens=4096")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    return parser


def parse_with_device_defaults(parser: argparse.ArgumentParser, defaults: dict[str, Any],
                               argv: list[str] | None) -> argparse.Namespace:
    """Parse, then fill every option left unset from the chosen device's defaults (a dataclass per device)."""
    args = parser.parse_args(argv)
    for name, value in asdict(defaults[args.device]).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4, help="decoder layers kept (the released model has 32)")
    parser.add_argument("--clips", type=int, help="clips in one step's global batch (default: 64 on cuda, 1 on cpu)")
    parser.add_argument("--steps", type=int, help="timed steps per stage (default: 10 on cuda, 2 on cpu)")
    parser.add_argument("--warmup", type=int, help="untimed steps before them (default: 3 on cuda, 1 on cpu)")
    parser.add_argument("--matmul-size", type=int, help="side of the reference matmul (default: 8192 on cuda, 1024 "
                                                        "on cpu)")
    return parse_with_device_defaults(parser, DEVICE_DEFAULTS, argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_arguments(argv)
    configs = [stage_config(path, args.preset, args.layers, args.device, args.overrides) for path in STAGE_CONFIGS]
    batches = micro_batches(synthetic_samples(args.clips, SEED), configs[0].data.loader)
    name = device_name(args.device)  # before the CPU runtime stubs torch.cuda
    dtype = torch.bfloat16 if configs[0].parallel.resolved_precision(args.device) == "bf16" else torch.float32
    stages = []
    for config in configs:
        stages.append(run_stage(config, batches, args.steps, args.warmup))
        release_stage()
    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
    matmul = matmul_figures(args.matmul_size, dtype, device)
    for stage in stages:
        stage["fraction_of_matmul"] = stage["tflops"] / matmul["tflops"]
    shutdown_parallel()
    result = {"device": name, "preset": args.preset, "layers": args.layers, "steps": args.steps,
              "warmup": args.warmup, "batch": batch_figures(batches), "matmul": matmul, "stages": stages}
    publish(result, report_lines(result), args.out)
    return result


def matmul_figures(size: int, dtype: torch.dtype, device: torch.device) -> dict:
    """The reference matmul's side, dtype and TFLOP/s, as the benchmarks record them."""
    return {"size": size, "dtype": str(dtype).removeprefix("torch."), "tflops": matmul_tflops(size, dtype, device)}


def publish(result: dict, lines: list[str], out: Path | None) -> None:
    """Print the report lines; write the figures as JSON to `out` when given."""
    print("\n".join(lines), flush=True)
    if out:
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
