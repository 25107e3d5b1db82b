"""`mqa-build-shards`: a manifest -> webdataset shards of log-mels and token sequences, with an index and rejects.

Work splits by manifest line: shard k holds the valid samples of lines [kK+1, (k+1)K] (K = --samples-per-shard), so
the output does not depend on the number of workers or on which shards a re-run rebuilds. Worker processes each load
the tokenizer once and run torch single-threaded (the log-mel dominates; one thread per process scales best). A
re-run reuses the shards whose records say they were built with the same settings, then assembles `index.json` and
`rejects.jsonl` from all records. Every manifest line ends up either written or rejected, with a reason.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import torch
from tqdm import tqdm

from data_prep.atomic_files import write_atomically
from data_prep.corpora.common import CorpusLayoutError
from data_prep.manifest import ManifestLayout, scan_manifest
from data_prep.recipe import MIXTURE_FILE, build_recipe, load_recipe, summary_lines
from data_prep.shard_writer import (
    RECORD_SUFFIX,
    BuildSettings,
    ShardRecord,
    ShardTask,
    build_shard,
)
from megatron_qwen_audio.data.shard_format import INDEX_FILE, REJECTS_FILE, ShardSetIndex
from megatron_qwen_audio.text.fetch import TokenizerChecksumError, resolve_tokenizer_file
from megatron_qwen_audio.text.tokenizer import QwenTokenizer, TextTokenizer
from megatron_qwen_audio.training.config_yaml import ConfigError

BUILDER_REVISION = 2  # bump when the bytes written for the same input change (2: index entries record tags)
EXIT_USAGE = 2
EXIT_TOO_MANY_REJECTS = 3
PROGRAM = "mqa-build-shards"

MANIFEST_HELP = """\
manifest format: JSON Lines, one sample per line. Required: "id", "task". Audio paths are relative to the
manifest's folder (or absolute); any format libsndfile reads, resampled to 16 kHz; at most 30 s per clip.
  transcribe  {"id": "a1", "audio": "wav/a1.flac", "task": "transcribe", "audio_lang": "en", "text_lang": "en", "text": "hello world"}
  (word timestamps) {"id": "a2", "audio": "wav/a2.wav", "task": "transcribe", "audio_lang": "en", "text_lang": "en", "timestamps": true, "words": [{"word": "hello", "start": 0.1, "end": 0.5}, {"word": " world", "start": 0.6, "end": 1.0}]}
  (a segment) {"id": "a3", "audio": "long/talk.flac", "start": 12.5, "end": 17.25, "task": "transcribe", "audio_lang": "en", "text_lang": "en", "text": "a cut of a long recording"}
  translate   {"id": "b1", "audio": "wav/b1.wav", "task": "translate", "audio_lang": "fr", "text_lang": "en", "text": "good morning"}
  caption     {"id": "c1", "audio": "wav/c1.wav", "task": "caption", "text_lang": "en", "text": "a dog barks twice"}
  keyword     {"id": "d1", "audio": "wav/d1.wav", "task": "keyword", "text_lang": "en", "instruction": "scene", "text": "airport"}
  qa          {"id": "e1", "audio": "wav/e1.wav", "task": "qa", "audio_lang": "en", "question": "How many speakers?", "answer": "Two."}
  lid         {"id": "f1", "audio": "wav/f1.wav", "task": "lid", "audio_lang": "es"}
  (text in place of the audio, any task above but timestamps; its tokens stand where the audio span would, for a
  text-only stage) {"id": "f2", "task": "lid", "audio_lang": "es", "audio_text": "buenos días"}
  chat        {"id": "g1", "task": "chat", "messages": [{"role": "user", "content": [{"audio": "wav/g1a.wav"}, {"audio": "wav/g1b.wav"}, {"text": "Which clip is louder?"}]}, {"role": "assistant", "content": "The second."}]}
  text        {"id": "h1", "task": "text", "messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]}
Output: DIR/shard-NNNNNN.tar (KEY.mel.npy float16 [80, T] or KEY.mel_0.npy, KEY.mel_1.npy.. for several clips;
KEY.tokens.npy, KEY.labels.npy int32 with -100 outside the loss; KEY.json), DIR/index.json, DIR/rejects.jsonl.
Shuffle the lines of a manifest that is sorted (by task, corpus or language) first: the loader shuffles shards and,
within each worker's share of shards, samples, so a shard should already hold a mixture.
Exit status: 0 done; 2 usage error; 3 done, but more lines rejected than --max-reject-fraction allows.
"""


class BuildRefused(Exception):
    """The output folder cannot be (re)used as asked; the message is one line that says what to do."""


def builder_version() -> str:
    return f"megatron-qwen-audio {version('megatron-qwen-audio')} shard builder {BUILDER_REVISION}"


def plan_shards(manifest: Path, out_dir: Path, layout: ManifestLayout, settings: BuildSettings) -> list[ShardTask]:
    per_shard = settings.samples_per_shard
    return [
        ShardTask(manifest=manifest, out_dir=out_dir, index=index, offset=offset, first_line=index * per_shard + 1,
                  last_line=min((index + 1) * per_shard, layout.lines), settings=settings)
        for index, offset in enumerate(layout.chunk_offsets)
    ]


def finished_records(out_dir: Path, tasks: Sequence[ShardTask], settings: BuildSettings) -> dict[int, ShardRecord]:
    """Records of shards a previous run finished with the same settings; refuses a folder built with other ones."""
    for path in sorted(out_dir.glob(f"*{RECORD_SUFFIX}")):
        earlier = ShardRecord.read(path).settings
        if earlier != settings:
            changed = ", ".join(
                f"{name} {value!r} -> {getattr(settings, name)!r}"
                for name, value in asdict(earlier).items() if getattr(settings, name) != value
            )
            raise BuildRefused(
                f"{out_dir} holds shards built with other settings ({changed}); "
                "write to a new --out folder or empty this one"
            )
    return {
        task.index: ShardRecord.read(task.record_path)
        for task in tasks if task.record_path.is_file() and task.tar_path.is_file()
    }


_worker_tokenizer: TextTokenizer | None = None


def _start_worker(tokenizer_file: Path) -> None:
    global _worker_tokenizer
    torch.set_num_threads(1)
    _worker_tokenizer = QwenTokenizer.from_file(tokenizer_file)


def _build_in_worker(task: ShardTask) -> ShardRecord:
    assert _worker_tokenizer is not None, "worker not initialised"
    return build_shard(task, _worker_tokenizer)


@contextmanager
def _single_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_shards(tasks: Sequence[ShardTask], workers: int, tokenizer: QwenTokenizer,
               tokenizer_file: Path) -> Iterable[ShardRecord]:
    """Build the shards, yielding each record as it finishes (in any order)."""
    if workers == 1 or len(tasks) <= 1:
        with _single_torch_thread():
            for task in tasks:
                yield build_shard(task, tokenizer)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch/OpenMP threads
    with context.Pool(min(workers, len(tasks)), initializer=_start_worker, initargs=(tokenizer_file,)) as pool:
        yield from pool.imap_unordered(_build_in_worker, tasks)


def assemble(out_dir: Path, records: Sequence[ShardRecord], settings: BuildSettings) -> ShardSetIndex:
    """Write `index.json` and `rejects.jsonl` (in line order) from the shard records."""
    samples = [sample for record in records for sample in record.entry.samples]
    counts: dict[str, dict[str, int]] = {}
    for field in ("task", "audio_lang", "text_lang"):
        values = Counter(value for sample in samples if (value := getattr(sample, field)) is not None)
        counts[field] = dict(sorted(values.items()))
    rejects = [reject for record in records for reject in record.rejects]
    assert len(samples) + len(rejects) == settings.manifest_lines, "every manifest line is written or rejected"
    index = ShardSetIndex(
        shards=[record.entry for record in records],
        manifest_lines=settings.manifest_lines,
        rejected=len(rejects),
        hours=sum(record.audio_seconds for record in records) / 3600,
        counts=counts,
        tokenizer_fingerprint=settings.tokenizer_fingerprint,
        builder_version=settings.builder_version,
    )
    write_atomically(out_dir / REJECTS_FILE,
                     "".join(json.dumps(reject, ensure_ascii=False) + "\n" for reject in rejects).encode("utf-8"))
    index.write(out_dir)
    return index


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Turn a JSONL manifest into webdataset shards (Whisper log-mels + Qwen-Audio token sequences) "
                    "with index.json and rejects.jsonl. Re-running on the same folder reuses finished shards.",
        epilog=MANIFEST_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, help="JSONL manifest (format below)")
    source.add_argument("--recipe", type=Path, help="build every set of a recipe (configs/recipes/, "
                        "data_prep/recipe.py) and write its mixture file; the options below apply to each set")
    parser.add_argument("--out", type=Path, help="output folder for shards, index and rejects (with --manifest)")
    parser.add_argument("--workers", type=_positive_int, default=len(os.sched_getaffinity(0)),
                        help="worker processes (default: the CPUs this process may use)")
    parser.add_argument("--samples-per-shard", type=_positive_int, default=1000,
                        help="manifest lines per shard: shard k takes lines [kK+1, (k+1)K] (default 1000)")
    parser.add_argument("--max-tokens", type=_positive_int, default=2048,
                        help="longest sequence kept, audio spans included (default 2048)")
    parser.add_argument("--max-reject-fraction", type=_fraction, default=0.05,
                        help=f"exit with status {EXIT_TOO_MANY_REJECTS} when more of the lines are rejected "
                             "(default 0.05); the shards, index and rejects are written either way")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="qwen.tiktoken (default: $MQA_TOKENIZER_FILE, else the cache filled by "
                             "mqa-fetch-tokenizer)")
    args = parser.parse_args(argv)
    if args.recipe is not None:
        if args.out is not None:
            parser.error("--out goes with --manifest; a recipe names its own folders (`shards:`)")
        if not args.recipe.is_file():
            parser.error(f"--recipe {args.recipe}: no such file")
        return args
    if args.out is None:
        parser.error("--manifest needs --out, the folder to write the shard set to")
    if not args.manifest.is_file():
        parser.error(f"--manifest {args.manifest}: no such file")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a folder")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tokenizer_file = resolve_tokenizer_file(args.tokenizer)
    except (FileNotFoundError, TokenizerChecksumError) as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return EXIT_USAGE
    tokenizer = QwenTokenizer.from_file(tokenizer_file)
    if args.recipe is None:
        return build_shard_set(args.manifest, args.out, args, tokenizer, tokenizer_file)
    try:
        recipe = load_recipe(args.recipe)
        status, table = build_recipe(recipe, args.recipe,
                                     lambda manifest, out: build_shard_set(manifest, out, args, tokenizer,
                                                                           tokenizer_file))
    except (ConfigError, CorpusLayoutError) as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if status:
        print(f"{PROGRAM}: a set of {args.recipe} did not build (above); fix it and run again: built sets are reused",
              file=sys.stderr)
        return status
    print("\n".join(summary_lines(table, Path(recipe.shards) / MIXTURE_FILE)))
    return 0


def build_shard_set(manifest: Path, out: Path, args: argparse.Namespace, tokenizer: QwenTokenizer,
                    tokenizer_file: Path) -> int:
    """One manifest -> one shard set in `out` under the command's settings (`args`); the exit status."""
    layout = scan_manifest(manifest, args.samples_per_shard)
    settings = BuildSettings(
        manifest_sha256=layout.sha256,
        manifest_lines=layout.lines,
        samples_per_shard=args.samples_per_shard,
        max_tokens=args.max_tokens,
        tokenizer_fingerprint=tokenizer.fingerprint,
        builder_version=builder_version(),
    )
    out.mkdir(parents=True, exist_ok=True)
    tasks = plan_shards(manifest, out, layout, settings)
    try:
        records = finished_records(out, tasks, settings)
    except BuildRefused as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return EXIT_USAGE
    pending = [task for task in tasks if task.index not in records]
    reused = len(records)
    with tqdm(total=layout.lines, unit="line", desc=PROGRAM) as progress:
        progress.update(sum(records[index].entry.last_line - records[index].entry.first_line + 1 for index in records))
        for record in run_shards(pending, args.workers, tokenizer, tokenizer_file):
            records[(record.entry.first_line - 1) // args.samples_per_shard] = record
            progress.update(record.entry.last_line - record.entry.first_line + 1)
    index = assemble(out, [records[task.index] for task in tasks], settings)

    fraction = index.rejected / layout.lines if layout.lines else 0.0
    print(f"wrote {index.num_samples} samples ({index.hours:.2f} h) in {len(tasks)} shards to {out} "
          f"({len(pending)} built, {reused} reused); rejected {index.rejected} of {layout.lines} lines "
          f"({fraction:.1%}), reasons in {out / REJECTS_FILE}; index in {out / INDEX_FILE}")
    if fraction > args.max_reject_fraction:
        print(f"{PROGRAM}: rejected fraction {fraction:.3f} exceeds --max-reject-fraction "
              f"{args.max_reject_fraction}; see {out / REJECTS_FILE}")
        return EXIT_TOO_MANY_REJECTS
    return 0


if __name__ == "__main__":
    sys.exit(main())
