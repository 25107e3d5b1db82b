"""`mqa-stats SET [SET ...]` / `mqa-stats --recipe R`: what a mixture of shard sets holds, from their `index.json`
files alone (and, for a built recipe, its mixture file).

Before spending GPU hours a user wants to see the mixture: hours and samples per task and language, how long the
token sequences are (percentiles, per task: they set the batch budget), and which tag combinations the samples are
conditioned on (the prompt hierarchy the shard builder recorded per sample, e.g.
`<|startoftranscript|><|fr|><|translate|><|en|><|notimestamps|><|itn|>`; `chatml` for conversations). No tar is
read, so it runs on shard sets in object storage (any URL `mqa-build-shards` sets are read from) in seconds.
Output is Markdown; exit 2 when a set cannot be read.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from data_prep.recipe import MIXTURE_FILE, Recipe, load_recipe
from megatron_qwen_audio.audio.lengths import HOP_LENGTH, SAMPLE_RATE
from megatron_qwen_audio.data.shard_format import SampleEntry, ShardSetIndex

PROGRAM = "mqa-stats"
PERCENTILES = (50, 90, 99)
NOT_RECORDED = "(not recorded: set built before mqa-build-shards recorded tags)"


@dataclass(frozen=True)
class Tally:
    """Samples, audio hours and token lengths of one group of samples."""

    samples: int
    hours: float
    tokens: list[int]


def audio_hours(sample: SampleEntry) -> float:
    return sum(sample.frames) * HOP_LENGTH / SAMPLE_RATE / 3600


def tally_by(samples: Sequence[SampleEntry], key) -> dict[tuple, Tally]:
    """Samples grouped by `key(sample)` (a tuple), groups in sorted order."""
    groups: dict[tuple, list[SampleEntry]] = defaultdict(list)
    for sample in samples:
        groups[key(sample)].append(sample)
    return {group: Tally(len(members), sum(map(audio_hours, members)), [member.tokens for member in members])
            for group, members in sorted(groups.items(), key=lambda item: tuple(map(str, item[0])))}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Header, alignment row and rows; numbers right-aligned with thousands separators, hours as `hours` renders."""
    numeric = [bool(rows) and all(isinstance(row[column], (int, float)) for row in rows)
               for column in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if right else "---" for right in numeric) + "|"]
    for row in rows:
        cells = [hours(cell) if isinstance(cell, float) else f"{cell:,}" if isinstance(cell, int) else str(cell)
                 for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def hours(value: float) -> str:
    """Hours with the digits that matter at their size: 1,234 / 12.35 / 0.0417."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value >= 1 else f"{value:.4f}"


def report(indexes: dict[str, ShardSetIndex]) -> list[str]:
    """The Markdown report of the sets: per set, per task and language, token lengths per task, tag combinations."""
    samples = [sample for index in indexes.values() for shard in index.shards for sample in shard.samples]
    total = max(len(samples), 1)
    lines = ["## Shard sets", ""]
    lines += markdown_table(["set", "samples", "hours", "rejected lines"],
                            [[name, index.num_samples, float(index.hours), index.rejected]
                             for name, index in indexes.items()]
                            + [["all", len(samples), sum(map(audio_hours, samples)),
                                sum(index.rejected for index in indexes.values())]])
    lines += ["", "## Tasks and languages", ""]
    by_language = tally_by(samples, lambda sample: (sample.task, sample.audio_lang or "-", sample.text_lang or "-"))
    lines += markdown_table(["task", "audio language", "text language", "samples", "share", "hours"],
                            [[*group, tally.samples, f"{tally.samples / total:.1%}", tally.hours]
                             for group, tally in by_language.items()])
    lines += ["", "## Token lengths (audio spans included)", ""]
    by_task = tally_by(samples, lambda sample: (sample.task,))
    lines += markdown_table(["task", "samples", *(f"p{p}" for p in PERCENTILES), "max"],
                            [[task, tally.samples, *(int(np.percentile(tally.tokens, p, method="higher"))
                                                     for p in PERCENTILES), max(tally.tokens)]
                             for (task,), tally in by_task.items()])
    lines += ["", "## Tag combinations", ""]
    by_tags = tally_by(samples, lambda sample: (sample.task, sample.tags or NOT_RECORDED))
    lines += markdown_table(["task", "tags", "samples", "hours"],
                            [[task, tags, tally.samples, tally.hours] for (task, tags), tally in by_tags.items()])
    return lines


def mixture_lines(recipe: Recipe) -> list[str]:
    """The built recipe's sampling shares (its mixture file), set by set."""
    mixture = yaml.safe_load((Path(recipe.shards) / MIXTURE_FILE).read_text(encoding="utf-8"))["data"]
    rows = [[spec["name"], spec["path_or_url"], f"{spec['weight']:.1%}"] for spec in mixture["train"]]
    rows += [[spec["name"], spec["path_or_url"], "held out"] for spec in mixture.get("heldout", [])]
    return ["## Mixture (share of each epoch's samples)", "", *markdown_table(["set", "shards", "share"], rows), ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", help="shard set folders or URLs (holding index.json)")
    parser.add_argument("--recipe", type=Path, help="instead of sets: a built recipe's sets and sampling shares")
    args = parser.parse_args(argv)
    if bool(args.sets) == (args.recipe is not None):
        parser.error("give shard sets or --recipe, not both")
    lines = []
    try:
        if args.recipe is not None:
            recipe = load_recipe(args.recipe)
            args.sets = [str(recipe.shard_dir(recipe_set)) for recipe_set in recipe.sets]
            lines = mixture_lines(recipe)
        indexes = {location: ShardSetIndex.read_url(location) for location in args.sets}
    except (OSError, ValueError) as error:  # ConfigError is a ValueError
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines + report(indexes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
