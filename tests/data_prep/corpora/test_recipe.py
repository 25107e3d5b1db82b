"""A recipe end to end on miniature corpora: `mqa-build-shards --recipe` writes each set's manifest and shards and a
mixture file whose weights follow hours ** temperature around a fixed share; a training config takes the mixture
as a base; a second run reuses everything; `mqa-stats --recipe` reports what the manifests hold. The shipped
recipes load and name only known corpora."""
import json
import os
from pathlib import Path

import pytest
import yaml
from corpus_miniatures import write_audio, write_text

from data_prep.build_shards import main as build_shards
from data_prep.recipe import load_recipe
from data_prep.shard_stats import main as shard_stats
from megatron_qwen_audio.data.shard_format import ShardSetIndex
from megatron_qwen_audio.data.shard_sets import ShardSetSpec
from megatron_qwen_audio.training.config import load_config
from megatron_qwen_audio.training.config_yaml import ConfigError

REPO = Path(__file__).resolve().parents[3]


def _miniatures(root: Path) -> None:
    """LibriSpeech (2 utterances, 3 s), ESC-50 (3 clips, 1.5 s; one of fold 5), and a pure-text manifest."""
    chapter = root / "LibriSpeech" / "dev-clean" / "84" / "121123"
    write_text(chapter / "84-121123.trans.txt", "84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS\n")
    write_audio(chapter / "84-121123-0000.flac", seconds=1.0)
    write_audio(chapter / "84-121123-0001.flac", seconds=2.0)
    write_text(root / "ESC-50" / "meta" / "esc50.csv", "filename,fold,target,category,esc10,src_file,take\n"
               "1-1-A-0.wav,1,0,dog,True,1,A\n1-2-A-1.wav,1,1,rooster,False,2,A\n5-3-A-0.wav,5,0,dog,True,3,A\n")
    for name in ("1-1-A-0.wav", "1-2-A-1.wav", "5-3-A-0.wav"):
        write_audio(root / "ESC-50" / "audio" / name, seconds=0.5)
    chat = {"id": "t1", "task": "text", "messages": [{"role": "user", "content": "Say hi."},
                                                     {"role": "assistant", "content": "Hi!"}]}
    write_text(root / "text.jsonl", json.dumps(chat) + "\n")


RECIPE = """\
manifests: manifests
shards: shards
temperature: 0.5
sets:
  - {name: libri, corpus: librispeech, root: LibriSpeech, split: dev-clean}
  - {name: esc, corpus: esc50, root: ESC-50, split: fold1}
  - {name: text, manifest: text.jsonl, weight: 0.2}
  - {name: esc-fold5, corpus: esc50, root: ESC-50, split: fold5, heldout: true}
"""


@pytest.fixture
def built(tmp_path, qwen_tokenizer_file, monkeypatch):
    monkeypatch.chdir(tmp_path)  # recipe paths are relative to where the command runs
    _miniatures(tmp_path)
    recipe = write_text(tmp_path / "recipe.yaml", RECIPE)
    arguments = ["--recipe", str(recipe), "--tokenizer", str(qwen_tokenizer_file), "--workers", "1"]
    assert build_shards(arguments) == 0
    return tmp_path, recipe, arguments


def test_recipe_builds_every_set_and_weighs_them_by_hours_with_temperature(built):
    root, _, _ = built
    mixture = yaml.safe_load((root / "shards" / "mixture.yaml").read_text())["data"]
    hours = {name: ShardSetIndex.read(root / "shards" / name).hours for name in ("libri", "esc")}
    assert hours["libri"] == pytest.approx(3 / 3600) and hours["esc"] == pytest.approx(1 / 3600)
    # the fixed 0.2 kept; the other 0.8 split as sqrt(3) : sqrt(1)
    expected = {"libri": 0.8 * 3**0.5 / (3**0.5 + 1), "esc": 0.8 / (3**0.5 + 1), "text": 0.2}
    assert {spec["name"]: spec["weight"] for spec in mixture["train"]} == pytest.approx(expected, abs=1e-6)
    assert mixture["heldout"] == [{"path_or_url": "shards/esc-fold5", "name": "esc-fold5"}]
    assert ShardSetIndex.read(root / "shards" / "esc-fold5").num_samples == 1
    run = write_text(root / "run.yaml", "base: [" + str(REPO / "configs" / "tiny_stage1.yaml") +
                     ", shards/mixture.yaml]\n")
    config = load_config(run)
    assert config.data.train[0] == ShardSetSpec("shards/libri", weight=pytest.approx(expected["libri"]), name="libri")
    assert [spec.name for spec in config.data.heldout] == ["esc-fold5"]


def test_a_second_run_reuses_the_manifests_and_shards(built, capsys):
    root, _, arguments = built
    manifest = root / "manifests" / "libri.jsonl"
    before = manifest.stat().st_mtime_ns
    os.utime(manifest, ns=(before - 10**9, before - 10**9))
    capsys.readouterr()
    assert build_shards(arguments) == 0
    assert manifest.stat().st_mtime_ns == before - 10**9  # not rewritten
    output = capsys.readouterr().out
    assert output.count("(0 built, 1 reused)") == 4
    assert "libri" in output and "50.7%" in output  # the summary table: 0.8 * sqrt(3) / (sqrt(3) + 1)


def test_stats_of_the_recipe_match_its_manifests(built, capsys):
    root, recipe, _ = built
    capsys.readouterr()
    assert shard_stats(["--recipe", str(recipe)]) == 0
    text = capsys.readouterr().out
    assert "| libri | shards/libri | 50.7% |" in text and "| esc-fold5 | shards/esc-fold5 | held out |" in text
    assert "| transcribe | en | en | 2 | 33.3% | 0.0008 |" in text  # 2 of the 6 samples of the 4 sets
    assert "| keyword | unknown | en | 3 | 50.0% | 0.0004 |" in text
    assert "| keyword | <|startofanalysis|><|unknown|><|keyword|><|en|><|notimestamps|><|event|> | 3 |" in text


def test_recipe_errors_name_the_set_and_the_fix(tmp_path):
    bad = write_text(tmp_path / "bad.yaml", "sets:\n  - {name: a, corpus: nocorpus, root: x}\n")
    with pytest.raises(ConfigError, match=r"sets\[0\] \(a\): unknown corpus 'nocorpus'"):
        load_recipe(bad)
    heavy = write_text(tmp_path / "heavy.yaml", "sets:\n  - {name: a, manifest: a.jsonl, weight: 0.6}\n"
                                                 "  - {name: b, manifest: b.jsonl, weight: 0.5}\n")
    with pytest.raises(ConfigError, match="fixed weights add up to 1.1"):
        load_recipe(heavy)


@pytest.mark.parametrize("recipe", sorted((REPO / "configs" / "recipes").glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_recipes_load(recipe):
    assert load_recipe(recipe).sets
