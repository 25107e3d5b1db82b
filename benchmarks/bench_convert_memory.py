"""Peak memory of `mqa-convert` on the full 8.4B shape: it must stay far below two copies of the model.

Writes a synthetic Hugging Face Qwen2-Audio checkpoint of the released shape in bf16 (random tensors, written shard
by shard, 16.8 GB on disk), then runs `mqa-convert import --qwen2-audio` and `mqa-convert export --format
qwen2-audio` on it in child processes and reports each one's peak resident memory (ru_maxrss of the child) against
the model's size. Needs about 3x the model's size of free disk (source, checkpoint, export; each removed when done
with) and a few minutes; not part of the test suite.

    python benchmarks/bench_convert_memory.py --work /path/with/60GB/free [--layers 32]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from megatron_qwen_audio.convert.decoder_rules import VocabRows
from megatron_qwen_audio.convert.source_models import QWEN2_AUDIO_RELEASED, qwen2_audio_rules
from megatron_qwen_audio.model.audio_encoder import AudioEncoderConfig
from megatron_qwen_audio.text.special_tokens import special_tokens
from megatron_qwen_audio.training.config import ModelConfig

QWEN2_AUDIO_VOCAB = 156_032  # the released Qwen2-Audio's text vocabulary rows
SHARD_BYTES = 2 << 30


def _their_shapes(model: ModelConfig) -> dict[str, torch.Size]:
    """Every tensor of the Qwen2-Audio checkpoint and its shape, from the converter's own rules run on meta."""
    from megatron_qwen_audio.convert.megatron_checkpoint import ModelLayout

    layout = ModelLayout(model, 1, torch.bfloat16)
    rows = VocabRows(vocab=model.vocab_size, padded=model.vocab_size, seed=0)
    ids = special_tokens()
    rules = qwen2_audio_rules(model, rows, QWEN2_AUDIO_RELEASED, (ids["<audio>"], ids["</audio>"]))
    shapes = {}
    for rule in rules:
        ours = [torch.empty(layout.shapes[name], device="meta") for name in rule.ours]
        shapes.update({name: tensor.shape for name, tensor in zip(rule.theirs, rule.to_theirs(*ours), strict=True)})
    return shapes


def write_source(folder: Path, model: ModelConfig) -> int:
    """The synthetic checkpoint (config.json and safetensors shards with an index); returns its bytes."""
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    shapes = _their_shapes(model)
    shard, files, weight_map, size, total = {}, 0, {}, 0, 0
    for name, shape in shapes.items():
        tensor = (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16)
        shard[name] = tensor
        size += tensor.nbytes
        total += tensor.nbytes
        if size >= SHARD_BYTES or name == next(reversed(shapes)):
            files += 1
            file = f"model-{files:05d}.safetensors"
            save_file(shard, str(folder / file), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, file))
            shard, size = {}, 0
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    encoder = model.audio_encoder
    (folder / "config.json").write_text(json.dumps({
        "model_type": "qwen2_audio",
        "audio_config": {"num_mel_bins": encoder.n_mels, "d_model": encoder.d_model, "encoder_layers": encoder.layers,
                         "encoder_attention_heads": encoder.heads, "encoder_ffn_dim": encoder.ffn_dim,
                         "max_source_positions": encoder.max_source_positions},
        "text_config": {"vocab_size": model.vocab_size, "hidden_size": model.hidden_size,
                        "intermediate_size": model.ffn_hidden_size, "num_hidden_layers": model.layers,
                        "num_attention_heads": model.heads, "num_key_value_heads": model.heads,
                        "rms_norm_eps": model.rms_norm_eps, "rope_theta": model.rotary_base,
                        "max_position_embeddings": 8192}}))
    return total


_MEASURE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss_of(command: list[str]) -> tuple[float, float]:
    """(peak resident GiB, seconds) of running `command`, measured by a fresh parent of its own (a process's
    children figure is the largest child it ever waited for)."""
    started = time.monotonic()
    finished = subprocess.run([sys.executable, "-c", _MEASURE, *command], check=True, stdout=subprocess.PIPE,
                              text=True)
    return int(finished.stdout.strip().splitlines()[-1]) / 2**20, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (removed at the end)")
    parser.add_argument("--layers", type=int, default=32, help="decoder layers (32: the full shape)")
    parser.add_argument("--tokenizer-file", type=Path, default=None, help="qwen.tiktoken (default: the cache)")
    args = parser.parse_args()
    model = ModelConfig(layers=args.layers, vocab_size=QWEN2_AUDIO_VOCAB, audio_encoder=AudioEncoderConfig())
    source, checkpoint, export = args.work / "source", args.work / "ckpt", args.work / "export"
    try:
        model_bytes = write_source(source, model)
        ids = special_tokens()
        convert = [sys.executable, "-m", "megatron_qwen_audio.convert.cli"]
        import_rss, import_s = peak_rss_of([*convert, "import", "--qwen2-audio", str(source), "--out",
                                            str(checkpoint), "--audio-bos-eos-ids",
                                            f"{ids['<audio>']},{ids['</audio>']}"])
        shutil.rmtree(source)
        tokenizer = ["--tokenizer-file", str(args.tokenizer_file)] if args.tokenizer_file else []
        export_rss, export_s = peak_rss_of([*convert, "export", "--ckpt", str(checkpoint), "--out", str(export),
                                            "--format", "qwen2-audio", *tokenizer])
        size = model_bytes / 2**30
        print(f"model: {model_bytes / 1e9:.2f} GB bf16 ({args.layers} decoder layers)")
        print(f"import: peak RSS {import_rss:.2f} GiB = {import_rss / size:.2f} x the model, {import_s:.0f} s")
        print(f"export: peak RSS {export_rss:.2f} GiB = {export_rss / size:.2f} x the model, {export_s:.0f} s")
    finally:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
