"""`mqa-eval CKPT --shards DIR [DIR ...] --out DIR`: greedy decoding of held-out shards and metrics per task and
language.

Writes `OUT/samples.jsonl` (one line per sample: key, task, languages, reference, hypothesis and their token ids, in
shard order, flushed as it goes), `OUT/metrics.json` and `OUT/metrics.md` (evaluation/metrics.py: WER/CER after text
normalisation for transcription, BLEU for translation, accuracy for language identification), and prints the table.
One process on the CPU or one GPU (bf16 there); the checkpoint may come from any training layout. `--batch-size`
samples of similar token budgets are decoded together, each as it would be alone (evaluation/decoding.py).
Exit codes: 0 done, 2 bad input (one line naming the file or setting).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from megatron_qwen_audio.data.shard_sets import ShardSetSpec, open_shard_sets
from megatron_qwen_audio.evaluation.audio_dependence import audio_dependence, audio_dependence_table
from megatron_qwen_audio.evaluation.decoding import HeldOutDecoder, held_out_samples
from megatron_qwen_audio.evaluation.metrics import metrics_table, score
from megatron_qwen_audio.text.fetch import resolve_tokenizer_file
from megatron_qwen_audio.text.tokenizer import QwenTokenizer

SAMPLES_FILE, METRICS_JSON, METRICS_TABLE = "samples.jsonl", "metrics.json", "metrics.md"
AUDIO_DEPENDENCE_JSON = "audio_dependence.json"
AUDIO_DEPENDENCE_TASKS = ("transcribe", "translate")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mqa-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder, or a run directory (its newest)")
    parser.add_argument("--shards", nargs="+", required=True, help="held-out shard set folders (or URLs)")
    parser.add_argument("--out", type=Path, required=True, help="folder for samples.jsonl and the metrics")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N samples")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="longest hypothesis")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="samples decoded together (each as it would be alone)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--tokenizer-file", type=Path, default=None, help="qwen.tiktoken (default: the cache)")
    parser.add_argument("--no-audio-dependence", action="store_true", help="skip the own-vs-swapped audio losses")
    return parser


def _load_model(checkpoint: Path, device: str):
    """The checkpoint's model at TP=1, PP=1 on `device`, its weights loaded (resharded from any layout)."""
    from megatron_qwen_audio.inference.single_process import single_process_model
    from megatron_qwen_audio.training.checkpointing import CONFIG_FILE, CheckpointManager, checkpoint_folder
    from megatron_qwen_audio.training.config import load_config

    folder = checkpoint_folder(checkpoint)
    model, torch_device = single_process_model(load_config(folder / CONFIG_FILE).model, device)
    CheckpointManager.load(folder, [model], optimizer=None)
    return model, torch_device


def evaluate(args: argparse.Namespace) -> str:
    """Decode, write the files, and return the metrics table."""
    from megatron_qwen_audio.training.trainer import check_tokenizer

    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: decode at least 1 sample at a time")
    tokenizer_file = resolve_tokenizer_file(args.tokenizer_file)
    sets = open_shard_sets([ShardSetSpec(path_or_url=str(path)) for path in args.shards])
    check_tokenizer(sets, tokenizer_file)
    model, device = _load_model(args.checkpoint, args.device)
    tokenizer = QwenTokenizer.from_file(tokenizer_file)
    decoder = HeldOutDecoder(model, tokenizer, device, args.max_new_tokens)
    args.out.mkdir(parents=True, exist_ok=True)
    held_out = list(held_out_samples(sets, args.max_samples))
    records = []
    with open(args.out / SAMPLES_FILE, "w", encoding="utf-8") as samples, \
            tqdm(total=len(held_out), desc="mqa-eval", unit="sample", file=sys.stderr, mininterval=10) as progress:
        for window in decoder.decode_in_windows(held_out, args.batch_size):
            lines = [record.to_dict() for record in window]
            records += lines
            samples.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
            samples.flush()
            progress.update(len(lines))
    rows = score(records)
    (args.out / METRICS_JSON).write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    table = metrics_table(rows)
    if not args.no_audio_dependence:
        results = audio_dependence(model, held_out, AUDIO_DEPENDENCE_TASKS, tokenizer.pad_id, device)
        (args.out / AUDIO_DEPENDENCE_JSON).write_text(json.dumps([r.to_dict() for r in results], indent=1) + "\n")
        table += "\n\n" + audio_dependence_table(results)
    (args.out / METRICS_TABLE).write_text(table + "\n", encoding="utf-8")
    return table


def main(argv: list[str] | None = None) -> int:
    from megatron_qwen_audio.training.checkpointing import CheckpointError
    from megatron_qwen_audio.training.config import ConfigError

    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        table = evaluate(args)
    except (CheckpointError, ConfigError, ValueError, OSError) as error:
        print(f"mqa-eval: {error}", file=sys.stderr)
        return 2
    print(table)
    print(f"mqa-eval: {args.out / SAMPLES_FILE}, {args.out / METRICS_TABLE} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
