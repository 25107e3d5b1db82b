"""Training throughput against the Hugging Face path on the same GPU (issue: GPU throughput).

What users would run instead is transformers' `Qwen2AudioForConditionalGeneration` trained the way its recipes do:
every clip padded to 30 s (3,000 mel frames, the processor's default, which the model also requires), every text
padded to the longest of the batch, SDPA attention, bf16 weights with fp32 master weights in AdamW (DeepSpeed's bf16
mode on one GPU), the stage's modules frozen. This script runs, in one process, on one device:
  (a) that baseline, and
  (b) this project at TP=1, PP=1 (the trainer's model, freeze masks, DDP, distributed optimizer and `train_step`,
      through `bench_step_gpu.run_stage`), with its batches packed (data.loader.pack_sequences: no padding in the
      decoder; the encoder pads clips only to the longest of their micro-batch)
for stage 1 (configs/qwen_audio_7b_stage1.yaml: encoder trains, LLM frozen) and stage 2
(configs/qwen_audio_7b_stage2_sft.yaml: LLM trains, encoder frozen), on the same model shape (the configs' preset:
Whisper-large-v2 encoder with all its blocks, Qwen-7B-wide decoder cut to `--layers` layers, the same padded
vocabulary) and the same samples (bench_step_gpu.synthetic_samples: `--clips` clips of uniform 2-30 s, ~3 transcript
tokens per audio-second, fixed seed; one optimizer step takes all of them, in one batch for (a), in micro-batches
under the loader budget for (b)).

Reported per stage and side: seconds/step, audio-seconds/s, text tokens/s (real positions outside the audio spans),
the ratio (b)/(a), useful model TFLOP/s (the same count for both sides: `training/model_flops.py` over real frames and
tokens, each module at its role under the stage's masks) and its fraction of a bf16 matmul measured in the same run,
peak device memory, and the positions each side actually computes (padded encoder frames, padded decoder positions).

Run: `python benchmarks/bench_train_gpu.py [--layers N] [--clips 12] [--steps 5] [--warmup 2] [--out FILE.json]`,
sized to finish within 5 minutes on one H100 or H200. `--device cpu --preset tiny` runs both sides on the CPU (the
test does).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

import numpy as np
import torch
from bench_step_gpu import (
    SEED,
    STAGE_CONFIGS,
    benchmark_parser,
    device_name,
    matmul_figures,
    micro_batches,
    parse_with_device_defaults,
    publish,
    release_stage,
    run_stage,
    stage_config,
    synthetic_samples,
    timed_steps,
)

from megatron_qwen_audio.audio.lengths import HOP_LENGTH, SAMPLE_RATE, audio_span_length
from megatron_qwen_audio.convert.model_configs import qwen2_audio_encoder_config, qwen2_text_config
from megatron_qwen_audio.data.sample_decoding import DecodedSample
from megatron_qwen_audio.data.shard_format import IGNORE_INDEX
from megatron_qwen_audio.runtime.parallel import shutdown_parallel
from megatron_qwen_audio.text.special_tokens import AUDIO_PAD, special_tokens
from megatron_qwen_audio.training.config import ModelConfig, TrainConfig, padded_vocab
from megatron_qwen_audio.training.memory_plan import GIB

HF_PADDED_FRAMES = 3000  # Qwen2-Audio's encoder input: 30 s of mel frames, whatever the clip's length
PACKING = ("data.loader.pack_sequences=true",)
# this project's modules -> the Hugging Face Qwen2-Audio parameters they correspond to (freeze masks by module)
HF_MODULE_PREFIXES = {
    "audio_encoder": ("model.audio_tower.", "model.multi_modal_projector."),
    "embedding": ("model.language_model.embed_tokens.",),
    "decoder": ("model.language_model.layers.", "model.language_model.norm."),
    "output_layer": ("lm_head.",),
}


@dataclass(frozen=True)
class DeviceDefaults:
    """The GPU run measures the real shape; the CPU run (tiny preset) only has to finish fast."""

    layers: int | None  # None: by the GPU's memory (LAYERS_BY_GPU_GIB)
    clips: int
    steps: int
    warmup: int
    matmul_size: int


# Decoder layers both sides fit with their optimizer state, by GPU memory (estimated: the HF side, which keeps bf16
# gradients, fp32 master weights, AdamW moments and fp32 logits of every padded position, binds first)
LAYERS_BY_GPU_GIB = ((120, 8), (0, 4))  # an H200 (139 GiB) takes 8, an H100 (79 GiB) 4
DEVICE_DEFAULTS = {"cuda": DeviceDefaults(layers=None, clips=12, steps=5, warmup=2, matmul_size=8192),
                   "cpu": DeviceDefaults(layers=2, clips=3, steps=1, warmup=1, matmul_size=512)}


def hf_model(model: ModelConfig, dtype: torch.dtype, device: torch.device):
    """Qwen2AudioForConditionalGeneration of this project's shape (the export's configs, the padded vocabulary),
    random weights built on `device` in `dtype`, SDPA attention; the `<audio>` span's placeholder is its audio token,
    so this project's token ids are its input ids unchanged."""
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    text = qwen2_text_config(replace(model, vocab_size=padded_vocab(model.vocab_size, 1, model.vocab_pad_multiple)))
    config = Qwen2AudioConfig(audio_config=qwen2_audio_encoder_config(model.audio_encoder), text_config=text,
                              audio_token_index=special_tokens()[AUDIO_PAD])
    with torch.device(device):
        return Qwen2AudioForConditionalGeneration._from_config(config, attn_implementation="sdpa", dtype=dtype)


def hf_batch(samples: list[DecodedSample], pad_token_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The samples as the Hugging Face recipe batches them: mel padded to 3,000 frames with its feature mask, token
    ids right-padded to the longest with an attention mask, labels -100 wherever the loss does not count (the model
    shifts them itself)."""
    length = max(len(sample.tokens) for sample in samples)
    n_mels = samples[0].mels[0].shape[0]
    input_ids = np.full((len(samples), length), pad_token_id, dtype=np.int64)
    labels = np.full((len(samples), length), IGNORE_INDEX, dtype=np.int64)
    attention_mask = np.zeros((len(samples), length), dtype=np.int64)
    features = np.zeros((len(samples), n_mels, HF_PADDED_FRAMES), dtype=np.float32)
    feature_mask = np.zeros((len(samples), HF_PADDED_FRAMES), dtype=np.int64)
    for row, sample in enumerate(samples):
        (mel,) = sample.mels  # one clip per ASR sample
        input_ids[row, : len(sample.tokens)] = sample.tokens
        labels[row, : len(sample.labels)] = sample.labels
        attention_mask[row, : len(sample.tokens)] = 1
        features[row, :, : mel.shape[1]] = mel
        feature_mask[row, : mel.shape[1]] = 1
    arrays = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask,
              "input_features": features, "feature_attention_mask": feature_mask}
    return {name: torch.from_numpy(array).to(device) for name, array in arrays.items()}


class MasterWeightAdamW:
    """AdamW over fp32 master copies of bf16 weights (DeepSpeed's bf16 mode on one GPU): the model computes in bf16,
    the update happens in fp32 and is copied back. Gradients are clipped to norm 1, as this project's optimizer and
    the HF Trainer's default do."""

    def __init__(self, parameters: list[torch.nn.Parameter], config: TrainConfig) -> None:
        self.parameters = parameters
        self.masters = [parameter.detach().float().clone() for parameter in parameters]
        settings = config.optimizer
        self.optimizer = torch.optim.AdamW(self.masters, lr=settings.lr, betas=settings.betas,
                                           weight_decay=settings.weight_decay,
                                           fused=parameters[0].is_cuda or None)

    def step(self) -> None:
        for master, parameter in zip(self.masters, self.parameters):
            master.grad = parameter.grad.float()
            parameter.grad = None
        torch.nn.utils.clip_grad_norm_(self.masters, 1.0)
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_copy_(self.parameters, self.masters)
        for master in self.masters:
            master.grad = None


def run_hf_stage(config: TrainConfig, samples: list[DecodedSample], steps: int, warmup: int,
                 device: torch.device) -> dict:
    """(a): the Hugging Face model under the stage's freeze masks, `warmup` untimed and `steps` timed steps."""
    dtype = torch.bfloat16 if config.parallel.resolved_precision(device.type) == "bf16" else torch.float32
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(config.seed)
    model = hf_model(config.model, dtype, device).train()
    trained_modules = [module for module in HF_MODULE_PREFIXES if _trained(config, module)]
    trained_prefixes = tuple(prefix for module in trained_modules for prefix in HF_MODULE_PREFIXES[module])
    for name, parameter in model.named_parameters():  # freeze only: HF keeps its fixed positions frozen itself
        parameter.requires_grad_(parameter.requires_grad and name.startswith(trained_prefixes))
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = MasterWeightAdamW(trainable, config)
    batch = hf_batch(samples, config.data.loader.pad_token_id, device)

    def step() -> float:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        return loss.item()

    seconds, losses = timed_steps(step, steps, warmup, device)
    figures = {
        "seconds_per_step": seconds,
        "trainable_parameters": sum(parameter.numel() for parameter in trainable),
        "trained_modules": trained_modules,
        "encoder_frames_computed": len(samples) * (HF_PADDED_FRAMES // 2),
        "decoder_positions_computed": batch["input_ids"].numel(),
        "last_loss": losses[-1],
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None,
    }
    return figures


def _trained(config: TrainConfig, module: str) -> bool:
    """Whether the stage's masks train `module` (every pattern of the stage names whole modules, e.g. decoder.*)."""
    return any(pattern.split(".")[0] == module for pattern in config.stage.trainable)


def sample_figures(samples: list[DecodedSample]) -> dict:
    """What one step's samples hold, the same for both sides."""
    frames = [sample.mels[0].shape[1] for sample in samples]
    return {
        "clips": len(samples),
        "audio_seconds": sum(frames) * HOP_LENGTH / SAMPLE_RATE,
        "clip_frames": frames,
        "sequence_lengths": [len(sample.tokens) - 1 for sample in samples],  # decoder inputs (collate's shift)
        "text_tokens": sum(len(sample.tokens) - audio_span_length(clip) for sample, clip in zip(samples, frames)),
        "target_tokens": sum(int((sample.labels != IGNORE_INDEX).sum()) for sample in samples),
    }


def stage_result(ours: dict, hf: dict, samples: dict, matmul: float) -> dict:
    """Rates of both sides from their step times; the useful FLOPs of a step are the samples' and roles', so the
    same count (ours: `StepFlops`) divides both times."""
    sides = {}
    for side, seconds in (("hf", hf["seconds_per_step"]), ("ours", ours["seconds_per_step"])):
        tflops = ours["flops_per_step"] / seconds / 1e12
        sides[side] = {"seconds_per_step": seconds, "audio_seconds_per_s": samples["audio_seconds"] / seconds,
                       "text_tokens_per_s": samples["text_tokens"] / seconds, "tflops": tflops,
                       "fraction_of_matmul": tflops / matmul}
    sides["hf"].update({name: hf[name] for name in ("peak_memory_gib", "encoder_frames_computed",
                                                    "decoder_positions_computed", "trainable_parameters",
                                                    "last_loss")})
    sides["ours"].update({"peak_memory_gib": ours["peak_memory_gib"],
                          "trainable_parameters": ours["trainable_parameters"], "last_loss": ours["last_loss"]})
    return {"stage": ours["stage"], "flops_per_step": ours["flops_per_step"], "flop_roles": ours["flop_roles"],
            "hf_trained_modules": hf["trained_modules"],
            "ratio": hf["seconds_per_step"] / ours["seconds_per_step"], **sides}


def report_lines(result: dict) -> list[str]:
    samples, matmul = result["samples"], result["matmul"]
    lines = [f"device: {result['device']}; preset {result['preset']}, encoder {result['encoder_layers']} blocks, "
             f"decoder {result['layers']} layers; torch {result['versions']['torch']}, transformers "
             f"{result['versions']['transformers']}",
             f"step: {samples['clips']} clips, {samples['audio_seconds']:.0f} audio-s, {samples['text_tokens']:,} text "
             f"tokens; matmul {matmul['size']}^3 {matmul['dtype']}: {matmul['tflops']:.1f} TFLOP/s"]
    for stage in result["stages"]:
        lines.append(f"{stage['stage']}: ours / HF = {stage['ratio']:.2f}x")
        for side, label in (("hf", "HF Qwen2-Audio"), ("ours", "this project")):
            figures = stage[side]
            memory = "-" if figures["peak_memory_gib"] is None else f"{figures['peak_memory_gib']:.1f} GiB"
            lines.append(f"  {label}: {figures['seconds_per_step']:.3f} s/step, "
                         f"{figures['audio_seconds_per_s']:,.1f} audio-s/s, {figures['text_tokens_per_s']:,.0f} "
                         f"text tokens/s, {figures['tflops']:.2f} useful TFLOP/s "
                         f"({figures['fraction_of_matmul']:.1%} of the matmul), peak memory {memory}")
    return lines


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, help="decoder layers (default: 8 on a GPU of 120 GiB or more, "
                                                   "else 4; 2 on cpu)")
    parser.add_argument("--clips", type=int, help="clips per optimizer step (default 12 on cuda)")
    parser.add_argument("--steps", type=int, help="timed steps per stage and side (default 5 on cuda)")
    parser.add_argument("--warmup", type=int, help="untimed steps before them (default 2 on cuda)")
    parser.add_argument("--matmul-size", type=int, help="side of the reference matmul (default 8192 on cuda)")
    args = parse_with_device_defaults(parser, DEVICE_DEFAULTS, argv)
    if args.layers is None:  # the cuda default: as many as the GPU's memory takes
        gib = torch.cuda.get_device_properties(0).total_memory / GIB
        args.layers = next(layers for at_least, layers in LAYERS_BY_GPU_GIB if gib >= at_least)
    return args


def main(argv: list[str] | None = None) -> dict:
    import transformers

    args = parse_arguments(argv)
    configs = [stage_config(path, args.preset, args.layers, args.device, [*PACKING, *args.overrides])
               for path in STAGE_CONFIGS]
    samples = synthetic_samples(args.clips, SEED)
    batches = micro_batches(samples, configs[0].data.loader)
    name = device_name(args.device)  # before the CPU runtime stubs torch.cuda
    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
    dtype = torch.bfloat16 if configs[0].parallel.resolved_precision(args.device) == "bf16" else torch.float32
    matmul = matmul_figures(args.matmul_size, dtype, device)
    figures = sample_figures(samples)
    stages = []
    for config in configs:
        hf = run_hf_stage(config, samples, args.steps, args.warmup, device)
        release_stage()  # the HF model and optimizer went out of scope: give their memory back first
        ours = run_stage(config, batches, args.steps, args.warmup)
        release_stage()
        stages.append(stage_result(ours, hf, figures, matmul["tflops"]))
    shutdown_parallel()
    result = {"device": name, "preset": args.preset, "layers": args.layers,
              "encoder_layers": configs[0].model.audio_encoder.layers, "steps": args.steps, "warmup": args.warmup,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
              "samples": figures, "micro_batches": len(batches),
              "ours_decoder_positions_computed": sum(batch.tokens.numel() for batch in batches),
              "matmul": matmul, "stages": stages}
    publish(result, report_lines(result), args.out)
    return result


if __name__ == "__main__":
    main()
