"""`mqa-convert`: import weights into a training checkpoint, export a checkpoint to Hugging Face, reshard.

    mqa-convert import --whisper SRC --qwen SRC --out CKPT [--tp N --pp M --stage-layers a,b]
    mqa-convert import --qwen-audio SRC --out CKPT            (released Qwen-Audio, v1 keys)
    mqa-convert import --qwen2-audio SRC --out CKPT           (transformers Qwen2AudioForConditionalGeneration)
    mqa-convert export --ckpt CKPT --out DIR --format qwen2-audio|qwen-audio
    mqa-convert reshard --ckpt CKPT --out CKPT2 --tp N --pp M

An imported CKPT is what a run's `init_from: CKPT` starts from, under any layout (megatron-core reshards on load);
--tp/--pp/--stage-layers are checked against the model and fix the vocabulary padding. `reshard` rewrites a
checkpoint's weights for a layout whose vocabulary padding differs (a TP size that does not divide 8), the one case
megatron-core's own resharding does not cover. Exit codes: 0 done, 2 bad input (one line naming the file/tensor).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from megatron_qwen_audio.convert.tensor_files import ConversionError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mqa-convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def layout_flags(command: argparse.ArgumentParser) -> None:
        command.add_argument("--out", type=Path, required=True, help="checkpoint folder to create (must not exist)")
        command.add_argument("--tp", type=int, default=1, help="tensor-parallel size the weights are meant for")
        command.add_argument("--pp", type=int, default=1, help="pipeline-parallel size the weights are meant for")
        command.add_argument("--stage-layers", type=lambda text: tuple(int(n) for n in text.split(",")),
                             default=None, help="decoder layers per pipeline stage, e.g. 14,18 (default: even)")
        command.add_argument("--dtype", choices=DTYPES, default="bf16", help="stored precision (default bf16)")

    importing = commands.add_parser("import", help="Whisper + Qwen, Qwen-Audio or Qwen2-Audio -> checkpoint")
    importing.add_argument("--whisper", type=Path, help="Whisper: HF directory or openai-whisper .pt (encoder used)")
    importing.add_argument("--qwen", type=Path, help="Qwen-7B (v1 keys) or Qwen2 directory")
    importing.add_argument("--qwen-audio", type=Path, help="released Qwen-Audio directory (v1 keys)")
    importing.add_argument("--qwen2-audio", type=Path, help="Qwen2AudioForConditionalGeneration directory")
    importing.add_argument("--audio-bos-eos-ids", type=lambda text: tuple(int(n) for n in text.split(",")),
                           default=None, help="Qwen2-Audio: ids of its audio bos,eos tokens (default: read from the "
                                              "source's tokenizer)")
    importing.add_argument("--seed", type=int, default=0, help="seed of freshly initialised tensors")
    layout_flags(importing)

    exporting = commands.add_parser("export", help="checkpoint -> Hugging Face directory")
    exporting.add_argument("--ckpt", type=Path, required=True, help="checkpoint folder, or a run directory")
    exporting.add_argument("--out", type=Path, required=True, help="directory to create (must not exist)")
    exporting.add_argument("--format", choices=("qwen2-audio", "qwen-audio"), required=True)
    exporting.add_argument("--dtype", choices=DTYPES, default=None, help="default: as stored")
    exporting.add_argument("--max-shard-gb", type=float, default=2.0, help="largest safetensors file (GB)")
    exporting.add_argument("--tokenizer-file", type=Path, default=None, help="qwen.tiktoken (default: the cache)")

    resharding = commands.add_parser("reshard", help="checkpoint -> checkpoint padded for another layout")
    resharding.add_argument("--ckpt", type=Path, required=True, help="checkpoint folder, or a run directory")
    layout_flags(resharding)
    return parser


def _import_sources(args: argparse.Namespace):
    from megatron_qwen_audio.convert import source_models

    kinds = [name for name in ("whisper", "qwen", "qwen_audio", "qwen2_audio") if getattr(args, name) is not None]
    if sorted(kinds) == ["qwen", "whisper"]:
        return source_models.whisper_and_qwen(args.whisper, args.qwen, args.tp, args.seed)
    if kinds == ["qwen_audio"]:
        return source_models.qwen_audio_v1(args.qwen_audio, args.tp, args.seed)
    if kinds == ["qwen2_audio"]:
        bos_eos = args.audio_bos_eos_ids or source_models.audio_bos_eos_ids(args.qwen2_audio)
        return source_models.qwen2_audio(args.qwen2_audio, args.tp, args.seed, bos_eos)
    raise ConversionError("import: give --whisper and --qwen together, or --qwen-audio alone, or --qwen2-audio alone")


def _run(args: argparse.Namespace) -> Path:
    from megatron_qwen_audio.training.config import ParallelConfig

    if args.command == "export":
        from megatron_qwen_audio.convert.exporting import export_checkpoint
        from megatron_qwen_audio.text.fetch import resolve_tokenizer_file

        return export_checkpoint(args.ckpt, args.out, args.format, resolve_tokenizer_file(args.tokenizer_file),
                                 DTYPES.get(args.dtype), int(args.max_shard_gb * 1e9))
    from megatron_qwen_audio.convert.megatron_checkpoint import write_checkpoint

    parallel = ParallelConfig(tensor_parallel=args.tp, pipeline_parallel=args.pp, stage_layers=args.stage_layers)
    if args.command == "import":
        sources = _import_sources(args)
        provenance = {name: str(getattr(args, name)) for name in ("whisper", "qwen", "qwen_audio", "qwen2_audio")
                      if getattr(args, name) is not None}
    else:
        from megatron_qwen_audio.convert.source_models import resharded

        sources = resharded(args.ckpt, args.tp)
        provenance = {"reshard": str(args.ckpt)}
    return write_checkpoint(args.out, sources.model, sources.plan, sources.files, dtype=DTYPES[args.dtype],
                            parallel=parallel, provenance=provenance, ignored=sources.ignored)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        out = _run(args)
    except (ConversionError, FileNotFoundError) as error:
        print(f"mqa-convert {args.command}: {error}", file=sys.stderr)
        return 2
    print(f"mqa-convert {args.command}: wrote {out} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
