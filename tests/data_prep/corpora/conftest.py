"""The `make_manifest` fixture: run a corpus builder as the CLI does and check every row it writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus_miniatures import assert_builds

from data_prep.make_manifest import main as make_manifest_main
from data_prep.make_manifest import skipped_report_path
from data_prep.manifest import parse_manifest_line


@pytest.fixture
def make_manifest(tmp_path, qwen_tokenizer):
    """Run `mqa-make-manifest CORPUS --root ROOT [--split S]` in process; (rows as written, skips as reported), after
    checking that every row builds into a token sequence."""
    def run(corpus: str, root: Path, split: str | None = None) -> tuple[list[dict], list[dict]]:
        out = tmp_path / "manifests" / f"{corpus}-{split or 'all'}.jsonl"
        arguments = [corpus, "--root", str(root), "--out", str(out), *(["--split", split] if split else [])]
        assert make_manifest_main(arguments) == 0
        lines = out.read_bytes().splitlines(keepends=True)
        for number, raw in enumerate(lines, start=1):
            assert_builds(parse_manifest_line(raw, number, out.parent), qwen_tokenizer)
        skips = [json.loads(line) for line in skipped_report_path(out).read_text().splitlines()]
        return [json.loads(line) for line in lines], skips
    return run
