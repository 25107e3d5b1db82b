"""One recipe over the miniature of every corpus layout, built end to end: every row each builder writes becomes a
sample (no reject), the mixture gives every set a share, and `mqa-stats --recipe` counts per task and language
exactly what the manifests hold."""
from __future__ import annotations

import importlib
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from data_prep.build_shards import main as build_shards
from data_prep.corpora import corpus_registry
from data_prep.shard_stats import main as shard_stats
from megatron_qwen_audio.data.shard_format import ShardSetIndex


def miniature_writers() -> dict:
    """corpus name -> its miniature writer, from every miniature_*.py beside this file."""
    writers = {}
    for path in sorted(Path(__file__).parent.glob("miniature_*.py")):
        writers.update(importlib.import_module(path.stem).MINIATURES)
    return writers


def stats_rows(text: str, section: str) -> list[list[str]]:
    """The table rows of one `## section` of mqa-stats' Markdown."""
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_every_corpus_has_a_miniature():
    assert sorted(miniature_writers()) == sorted(corpus_registry())


def test_a_recipe_of_every_corpus_builds_and_its_stats_match_the_manifests(tmp_path, qwen_tokenizer_file, monkeypatch,
                                                                           capsys):
    monkeypatch.chdir(tmp_path)
    sets = []
    for name, write in sorted(miniature_writers().items()):
        root, split = write(tmp_path / "corpora" / name)
        sets.append({"name": name, "corpus": name, "root": str(root), **({"split": split} if split else {})})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"manifests": "manifests", "shards": "shards", "sets": sets}))
    assert build_shards(["--recipe", str(recipe), "--tokenizer", str(qwen_tokenizer_file), "--workers", "1"]) == 0

    expected: Counter = Counter()
    for recipe_set in sets:
        rows = [json.loads(line) for line in (tmp_path / "manifests" / f"{recipe_set['name']}.jsonl").open()]
        index = ShardSetIndex.read(tmp_path / "shards" / recipe_set["name"])
        assert rows and (index.num_samples, index.rejected) == (len(rows), 0), recipe_set["name"]
        expected.update((row["task"], row.get("audio_lang", "-"), row.get("text_lang", "-")) for row in rows)
    mixture = yaml.safe_load((tmp_path / "shards" / "mixture.yaml").read_text())["data"]["train"]
    assert [spec["name"] for spec in mixture] == [recipe_set["name"] for recipe_set in sets]
    assert sum(spec["weight"] for spec in mixture) == pytest.approx(1, abs=1e-5)

    capsys.readouterr()
    assert shard_stats(["--recipe", str(recipe)]) == 0
    text = capsys.readouterr().out
    reported = Counter({(task, audio, text_lang): int(samples.replace(",", ""))
                        for task, audio, text_lang, samples, *_ in stats_rows(text, "Tasks and languages")})
    assert reported == expected
    tasks = {row[0] for row in stats_rows(text, "Tag combinations")}
    assert tasks == {"transcribe", "translate", "caption", "keyword", "qa", "lid"}
