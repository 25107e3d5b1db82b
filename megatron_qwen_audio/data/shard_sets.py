"""Shard sets as the loader sees them: where each one lives, its weight in the mixture, and its index.

A set is named by its root (a folder or a URL prefix holding `index.json` and the shards) and, optionally, a URL
template saying how to open one of its files, so the same set reads from local disk, through a `pipe:` command
(an object-store client, say) or over http with webdataset's URL machinery. Everything here is checked once, up
front, so a bad set fails before training starts rather than inside a data worker hours later.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from megatron_qwen_audio.data.shard_format import INDEX_FILE, ShardSetIndex

DEFAULT_URL_TEMPLATE = "{root}/{name}"


@dataclass(frozen=True)
class ShardSetSpec:
    path_or_url: str  # the set's root: a folder, or a URL prefix, that holds index.json and the shard tars
    weight: float = 1.0  # share of each epoch's samples: weight / sum of weights x all samples of all sets
    url_template: str | None = None  # how to open a file of the set from {root} and {name}: "pipe:cat {root}/{name}"
    name: str | None = None  # label in batch keys and messages; by default the root's last path component


@dataclass
class ShardSet:
    """A set whose index has been read and checked: enough to plan epochs and to open its shards."""

    name: str
    weight: float
    root: str
    url_template: str
    index: ShardSetIndex
    digest: str = field(init=False)  # of what a plan reads from the index; a resume checks it

    def __post_init__(self) -> None:
        self.digest = _plan_digest(self.index)

    def url(self, file_name: str) -> str:
        return self.url_template.format(root=self.root, name=file_name)

    def shard_url(self, shard_id: int) -> str:
        return self.url(self.index.shards[shard_id].name)

    def describe_shard(self, shard_id: int) -> str:
        return f"set {self.name!r} shard {self.index.shards[shard_id].name} ({self.shard_url(shard_id)})"


def _plan_digest(index: ShardSetIndex) -> str:
    """Hash of what an epoch plan reads from an index (shards, keys, lengths): a resumed run must plan over exactly
    the data it was saved with."""
    digest = hashlib.sha256()
    for shard in index.shards:
        digest.update(shard.name.encode())
        for sample in shard.samples:
            digest.update(f"|{sample.key}:{sample.tokens}:{sample.frames}".encode())
    return digest.hexdigest()[:16]


def open_shard_sets(specs: Sequence[ShardSetSpec]) -> list[ShardSet]:
    """Read every set's index and check that the sets can be mixed; one-line errors name the set and the fix."""
    if not specs:
        raise ValueError("no shard sets given: list at least one set (folder or URL) for the loader")
    sets = [_open_shard_set(spec) for spec in specs]
    names = [shard_set.name for shard_set in sets]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"shard sets share the name(s) {duplicates}; give each set a distinct `name`")
    fingerprints = {shard_set.index.tokenizer_fingerprint for shard_set in sets}
    if len(fingerprints) > 1:
        listing = ", ".join(f"{shard_set.name} ({shard_set.index.tokenizer_fingerprint})" for shard_set in sets)
        raise ValueError(f"shard sets were built with different tokenizers: {listing}; rebuild them with one tokenizer")
    return sets


def _open_shard_set(spec: ShardSetSpec) -> ShardSet:
    root = spec.path_or_url.rstrip("/")
    name = spec.name or root.rsplit("/", 1)[-1]
    if not spec.weight > 0:
        raise ValueError(f"shard set {name!r}: weight {spec.weight} must be positive (leave a set out to skip it)")
    template = spec.url_template or DEFAULT_URL_TEMPLATE
    if "{name}" not in template:
        raise ValueError(f"shard set {name!r}: url_template {template!r} must contain {{name}} (the file to open)")
    try:
        index_url = template.format(root=root, name=INDEX_FILE)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"shard set {name!r}: url_template {template!r} may only use {{root}} and {{name}}") from exc
    shard_set = ShardSet(name, spec.weight, root, template, ShardSetIndex.read_url(index_url))
    if shard_set.index.num_samples == 0:
        raise ValueError(f"shard set {name!r} ({root}) holds no samples; rebuild it or leave it out")
    _check_local_shards(shard_set)
    return shard_set


def _check_local_shards(shard_set: ShardSet) -> None:
    """Shards on a local filesystem are checked now (cheap); remote ones fail, naming the shard, when opened."""
    for shard_id in range(len(shard_set.index.shards)):
        url = shard_set.shard_url(shard_id)
        parsed = urlparse(url)
        if parsed.scheme in ("", "file") and not Path(parsed.path if parsed.scheme else url).exists():
            raise FileNotFoundError(
                f"{shard_set.describe_shard(shard_id)} is listed in {INDEX_FILE} but missing; "
                "restore the file or rebuild the shard set"
            )
