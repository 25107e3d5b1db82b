"""`mqa-make-manifest CORPUS --root DIR --out M.jsonl [--split S]`: a public corpus, read in its published layout,
as a sample manifest for `mqa-build-shards`, with the right task, languages, output instruction and timestamps.

Beside the manifest goes `M.skipped.jsonl`: one line {where, reason} for every entry of the corpus that did not
become a row (its audio missing, its label empty, its language without a tag, ...), so every entry ends up in one of
the two files. Audio paths are written relative to the manifest's folder (absolute when on another drive), so the
manifest moves with the corpus. The files are written under hidden temporary names and renamed at the end: an
interrupted run leaves no half manifest. Exit status: 0, or 2 when the folder does not have the corpus's layout (one
line on stderr says which file and what to do).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from data_prep.atomic_files import atomic_text_file
from data_prep.corpora import corpus_registry
from data_prep.corpora.common import CorpusLayoutError, Row, Skip

PROGRAM = "mqa-make-manifest"
EXAMPLE_REASONS = 5  # skip reasons printed; the report holds all
LISTED_SPLITS = 8  # splits named per corpus in --help


def skipped_report_path(manifest: Path) -> Path:
    """`M.jsonl` -> `M.skipped.jsonl` beside it."""
    return manifest.with_name(f"{manifest.stem}.skipped.jsonl")


def _portable_audio(row: Row, folder: Path) -> Row:
    """The row with its top-level audio path relative to the manifest's folder where that is possible."""
    if "audio" not in row:
        return row
    try:
        relative = os.path.relpath(row["audio"], folder)
    except ValueError:  # another drive: keep the absolute path
        return row
    return {**row, "audio": relative}


def write_manifest(items: Iterable[Row | Skip], out: Path) -> tuple[Counter, list[Skip]]:
    """Write the rows to `out` and the skips to its report; the rows per (task, audio_lang) and the skips.
    A repeated id is a skip: the manifest's ids must be unique."""
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = out.absolute().parent
    counts: Counter = Counter()
    skips: list[Skip] = []
    seen: set[str] = set()
    with atomic_text_file(out) as rows, atomic_text_file(skipped_report_path(out)) as skipped:
        for item in items:
            if isinstance(item, Row) and item["id"] in seen:
                item = Skip(item["id"], f"id {item['id']!r} repeated; the corpus lists this entry twice")
            if isinstance(item, Skip):
                skips.append(item)
                skipped.write(json.dumps({"where": item.where, "reason": item.reason}, ensure_ascii=False) + "\n")
                continue
            seen.add(item["id"])
            counts[item["task"], item.get("audio_lang", "-")] += 1
            rows.write(json.dumps(_portable_audio(item, folder), ensure_ascii=False) + "\n")
    return counts, skips


def _splits_note(splits: Sequence[str]) -> str:
    """' (splits: a, b, ...)' for the corpus listing: the first few of a long list, and how many there are."""
    if not splits:
        return ""
    shown = ", ".join(splits[:LISTED_SPLITS])
    return f" (splits: {shown}{f', ... {len(splits)} in all' if len(splits) > LISTED_SPLITS else ''})"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    registry = corpus_registry()
    listing = "\n".join(f"  {name:<20} {corpus.description}{_splits_note(corpus.splits)}"
                        for name, corpus in sorted(registry.items()))
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0], epilog=f"corpora:\n{listing}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", choices=sorted(registry), metavar="CORPUS", help="corpus layout (listed below)")
    parser.add_argument("--root", type=Path, required=True, help="the corpus folder, as published")
    parser.add_argument("--out", type=Path, required=True, help="manifest to write (JSONL)")
    parser.add_argument("--split", help="which split to read (default: the corpus's first)")
    args = parser.parse_args(argv)
    args.registry = registry
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    corpus = args.registry[args.corpus]
    if args.split is not None and not corpus.splits:
        print(f"{PROGRAM}: {args.corpus} has no splits; leave out --split", file=sys.stderr)
        return 2
    try:
        counts, skips = write_manifest(corpus.rows(args.root, args.split), args.out)
    except CorpusLayoutError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    summary = ", ".join(f"{task}/{language} {count}" for (task, language), count in sorted(counts.items()))
    print(f"{PROGRAM}: {sum(counts.values())} rows to {args.out} ({summary or 'none'}); {len(skips)} skipped "
          f"-> {skipped_report_path(args.out)}")
    for skip in skips[:EXAMPLE_REASONS]:
        print(f"  skipped {skip.where}: {skip.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
