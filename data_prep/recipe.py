"""Recipes: the shard sets of a training stage's mixture and how often each is sampled, in one YAML file.

A recipe (configs/recipes/*.yaml) lists sets, each either a corpus read in its published layout (`corpus`, `root`,
`split`: data_prep/corpora, written to MANIFESTS/NAME.jsonl by the same code as `mqa-make-manifest`) or a ready
manifest (`manifest`: e.g. QA pairs from `mqa-make-qa`, ChatML conversations). `mqa-build-shards --recipe R` builds
every set into SHARDS/NAME, resumably (a manifest already written is kept; finished shards are reused), then writes
SHARDS/mixture.yaml, a training-config fragment to list under `base:`:

    data:
      train:   [{path_or_url: SHARDS/NAME, weight: W, name: NAME}, ...]    (sets without `heldout: true`)
      heldout: [{path_or_url: SHARDS/NAME, name: NAME}, ...]

Weights. A training set's weight is its share of each epoch's samples (ShardSetSpec.weight). A set may fix it
(`weight: 0.05`); the others share what is left in proportion to hours ** temperature, hours being the audio of the
built set (temperature 1: by hours; 0: equal shares; the Qwen-Audio-style default 0.5 lifts small sets without
letting them repeat as often as equal shares would). A set without audio (pure-text instructions) has no hours and
must fix its weight. Everything can be overridden in the recipe file, or in a copy of it.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from data_prep.atomic_files import write_atomically
from data_prep.corpora import corpus_registry
from data_prep.make_manifest import write_manifest
from megatron_qwen_audio.data.shard_format import ShardSetIndex
from megatron_qwen_audio.training.config_yaml import ConfigError, build_dataclass, read_layered_yaml

MIXTURE_FILE = "mixture.yaml"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class RecipeSet:
    """One shard set of the mixture: a corpus (corpus + root, optional split) or a ready manifest."""

    name: str  # folder name under `shards` (and manifest name under `manifests`): letters, digits, . _ -
    corpus: str | None = None  # a corpus layout of `mqa-make-manifest` (e.g. librispeech)
    root: str | None = None  # the corpus folder as published (relative to where the command runs)
    split: str | None = None  # the corpus split (default: the corpus's first)
    manifest: str | None = None  # instead of a corpus: an existing manifest
    weight: float | None = None  # fixed share of each epoch's samples; unset: by hours with the temperature
    heldout: bool = False  # a held-out set for evaluation instead of a training set (no weight)


@dataclass(frozen=True)
class Recipe:
    manifests: str = "data/manifests"  # where corpus sets' manifests are written (MANIFESTS/NAME.jsonl)
    shards: str = "data/shards"  # where each set's shards go (SHARDS/NAME) and the mixture file (SHARDS/mixture.yaml)
    temperature: float = 0.5  # share of samples of a set without a fixed weight ~ hours ** temperature
    sets: tuple[RecipeSet, ...] = ()

    def manifest_path(self, recipe_set: RecipeSet) -> Path:
        return Path(recipe_set.manifest) if recipe_set.manifest else Path(self.manifests) / f"{recipe_set.name}.jsonl"

    def shard_dir(self, recipe_set: RecipeSet) -> Path:
        return Path(self.shards) / recipe_set.name


def load_recipe(path: Path) -> Recipe:
    """The recipe in `path` (with `base:` layering), checked; ConfigError names the file, key and fix."""
    data, origins = read_layered_yaml(path)
    recipe = build_dataclass(Recipe, data, origins, str(path))
    _check(recipe, path)
    return recipe


def _check(recipe: Recipe, path: Path) -> None:
    if not recipe.sets:
        raise ConfigError(f"{path}: `sets` is empty; list the shard sets of the mixture")
    if recipe.temperature < 0:
        raise ConfigError(f"{path}: temperature={recipe.temperature} must be at least 0")
    corpora = corpus_registry()
    names = set()
    for index, recipe_set in enumerate(recipe.sets):
        where = f"{path}: sets[{index}] ({recipe_set.name})"
        if not SAFE_NAME.match(recipe_set.name) or recipe_set.name in names:
            raise ConfigError(f"{where}: the name must be unique and made of letters, digits, '.', '_' and '-'")
        names.add(recipe_set.name)
        if (recipe_set.corpus is None) == (recipe_set.manifest is None):
            raise ConfigError(f"{where}: give either `corpus` (with `root`) or `manifest`")
        if recipe_set.corpus is not None and recipe_set.corpus not in corpora:
            raise ConfigError(f"{where}: unknown corpus {recipe_set.corpus!r}; mqa-make-manifest --help lists them")
        if recipe_set.corpus is not None and recipe_set.root is None:
            raise ConfigError(f"{where}: corpus {recipe_set.corpus} needs `root`, the corpus folder")
        if recipe_set.weight is not None and (recipe_set.heldout or not 0 < recipe_set.weight < 1):
            raise ConfigError(f"{where}: weight={recipe_set.weight} must be a share in (0, 1) of a training set")
    fixed = sum(recipe_set.weight or 0 for recipe_set in recipe.sets)
    if fixed >= 1:
        raise ConfigError(f"{path}: the fixed weights add up to {fixed:g}; they must leave a share for the others")


def write_corpus_manifest(recipe: Recipe, recipe_set: RecipeSet) -> Path:
    """The set's manifest, written from its corpus unless a previous run already wrote it (resume); its path."""
    path = recipe.manifest_path(recipe_set)
    if recipe_set.corpus is not None and not path.is_file():
        corpus = corpus_registry()[recipe_set.corpus]
        write_manifest(corpus.rows(Path(recipe_set.root), recipe_set.split), path)
    return path


def mixture_weights(recipe: Recipe, hours: dict[str, float]) -> dict[str, float]:
    """Each training set's share of the samples (module doc), from the built sets' audio hours."""
    training = [recipe_set for recipe_set in recipe.sets if not recipe_set.heldout]
    by_hours = [recipe_set for recipe_set in training if recipe_set.weight is None]
    silent = [recipe_set.name for recipe_set in by_hours if hours[recipe_set.name] <= 0]
    if silent:
        raise ConfigError(f"set(s) {', '.join(silent)} hold no audio, so hours cannot weigh them; give each a "
                          "`weight` in the recipe")
    left = 1 - sum(recipe_set.weight for recipe_set in training if recipe_set.weight is not None)
    sizes = {recipe_set.name: hours[recipe_set.name] ** recipe.temperature for recipe_set in by_hours}
    total = sum(sizes.values())
    return {recipe_set.name: recipe_set.weight if recipe_set.weight is not None else left * sizes[recipe_set.name]
            / total for recipe_set in training}


def mixture_yaml(recipe: Recipe, weights: dict[str, float], source: Path) -> str:
    """The training-config fragment of the built mixture (module doc)."""
    def entry(recipe_set: RecipeSet, weight: float | None) -> dict:
        spec = {"path_or_url": str(recipe.shard_dir(recipe_set)), "name": recipe_set.name}
        return spec if weight is None else {**spec, "weight": round(weight, 6)}

    data = {"train": [entry(s, weights[s.name]) for s in recipe.sets if not s.heldout]}
    heldout = [entry(s, None) for s in recipe.sets if s.heldout]
    if heldout:
        data["heldout"] = heldout
    header = (f"# Written by `mqa-build-shards --recipe {source}`: its shard sets, and each training set's share of "
              f"the samples\n# (temperature {recipe.temperature} over hours, fixed weights kept). List this file "
              "under `base:` in a training config.\n")
    return header + yaml.safe_dump({"data": data}, sort_keys=False, width=120)


def build_recipe(recipe: Recipe, source: Path, build_set: Callable[[Path, Path], int]) -> tuple[int, dict]:
    """Build every set (`build_set(manifest, out_dir)` returns mqa-build-shards' exit status), then write the
    mixture file; (the worst status, {name: (samples, hours, weight)}). A set that fails stops nothing: the others
    are built, and the mixture is written only when all succeeded."""
    statuses = []
    for recipe_set in recipe.sets:
        print(f"== {recipe_set.name}", flush=True)
        statuses.append(build_set(write_corpus_manifest(recipe, recipe_set), recipe.shard_dir(recipe_set)))
    if any(statuses):
        return max(statuses), {}
    indexes = {s.name: ShardSetIndex.read(recipe.shard_dir(s)) for s in recipe.sets}
    weights = mixture_weights(recipe, {name: index.hours for name, index in indexes.items()})
    out = Path(recipe.shards) / MIXTURE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, mixture_yaml(recipe, weights, source).encode("utf-8"))
    return 0, {name: (index.num_samples, index.hours, weights.get(name)) for name, index in indexes.items()}


def summary_lines(table: dict, mixture: Path) -> Sequence[str]:
    """The built mixture as printed lines: set, samples, hours, share of the samples."""
    lines = [f"{'set':<28} {'samples':>10} {'hours':>10} {'share':>8}"]
    for name, (samples, hours, weight) in table.items():
        share = "held out" if weight is None else f"{weight:.1%}"
        lines.append(f"{name:<28} {samples:>10,} {hours:>10.2f} {share:>8}")
    return [*lines, f"mixture: {mixture}"]
