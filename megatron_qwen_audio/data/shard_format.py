"""The on-disk shard format shared by the offline builder (writer) and the loader (reader).

A shard set is a folder of standard webdataset tars plus `index.json` (what is in them, so a loader can plan an
epoch, balance ranks and resume without opening a tar) and `rejects.jsonl` (manifest lines that did not make it, with
the reason). Members of one sample share a key; several clips of one sample are `mel_0.npy`, `mel_1.npy`, ...
"""
from __future__ import annotations

import io
import json
import os
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import webdataset

FORMAT_NAME = "megatron-qwen-audio-shards"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
REJECTS_FILE = "rejects.jsonl"
IGNORE_INDEX = -100  # labels value of positions outside the loss (prompt, audio span, padding)

TOKENS_MEMBER = "tokens.npy"
LABELS_MEMBER = "labels.npy"
META_MEMBER = "json"


def shard_name(shard_index: int) -> str:
    return f"shard-{shard_index:06d}.tar"


def sample_key(manifest_line: int) -> str:
    """Key of the sample built from 1-based manifest line `manifest_line`: unique in a set, dot-free for webdataset."""
    return f"line-{manifest_line:09d}"


def mel_member(clip_index: int, num_clips: int) -> str:
    """Member name of one clip's log-mel: `mel.npy` for the usual single clip, `mel_N.npy` when a sample has several."""
    return "mel.npy" if num_clips == 1 else f"mel_{clip_index}.npy"


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


@dataclass
class SampleEntry:
    """What the loader needs to know about a sample without reading it: its key, lengths and tags."""

    key: str
    frames: list[int]  # mel frames of each clip, in order; empty for text-only samples
    tokens: int
    task: str
    audio_lang: str | None = None
    text_lang: str | None = None
    tags: str | None = None  # the prompt's tag hierarchy (text.tags.prompt_tags); None in indexes built before it

    def array_members(self) -> list[str]:
        """Member suffixes of the sample's arrays (tokens, labels, each clip's mel); its json metadata aside."""
        return [TOKENS_MEMBER, LABELS_MEMBER, *(mel_member(clip, len(self.frames)) for clip in range(len(self.frames)))]


@dataclass
class ShardEntry:
    name: str
    first_line: int  # manifest lines [first_line, last_line] were considered for this shard (1-based, inclusive)
    last_line: int
    samples: list[SampleEntry] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> "ShardEntry":
        samples = [SampleEntry(**sample) for sample in data["samples"]]
        return cls(name=data["name"], first_line=data["first_line"], last_line=data["last_line"], samples=samples)


@dataclass
class ShardSetIndex:
    """Contents of `index.json`."""

    shards: list[ShardEntry]
    manifest_lines: int
    rejected: int
    hours: float
    counts: dict[str, dict[str, int]]  # "task" / "audio_lang" / "text_lang" -> value -> samples
    tokenizer_fingerprint: str
    builder_version: str
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    @property
    def num_samples(self) -> int:
        return sum(len(shard.samples) for shard in self.shards)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["samples"] = self.num_samples
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = INDEX_FILE) -> "ShardSetIndex":
        if data.get("format") != FORMAT_NAME or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{source}: not a {FORMAT_NAME} v{FORMAT_VERSION} index (format={data.get('format')!r}, "
                f"version={data.get('format_version')!r}); rebuild the shards with this version of mqa-build-shards"
            )
        fields = {k: v for k, v in data.items() if k not in ("shards", "samples")}
        return cls(shards=[ShardEntry.from_dict(shard) for shard in data["shards"]], **fields)

    def write(self, directory: str | Path) -> None:
        """Write `index.json` atomically, so a reader never sees a half-written index."""
        path = Path(directory) / INDEX_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()))
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: str | Path) -> "ShardSetIndex":
        """Read an index from a shard-set folder or from the `index.json` file itself."""
        path = Path(path)
        if path.is_dir():
            path = path / INDEX_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no shard index; build the shard set with mqa-build-shards first")
        return cls.from_dict(json.loads(path.read_text()), source=str(path))

    @classmethod
    def read_url(cls, url: str) -> "ShardSetIndex":
        """Read an index from anything webdataset's `gopen` opens (`pipe:`, `http(s):`, ...) or from a local path,
        so a shard set kept in object storage is planned from its index without a local copy."""
        if urlparse(url).scheme in ("", "file"):
            return cls.read(url.removeprefix("file://").removeprefix("file:"))
        try:
            with closing(webdataset.gopen(url)) as stream:
                text = stream.read()
        except OSError as exc:
            raise FileNotFoundError(f"{url}: could not read the shard index ({exc}); check the set's location") from exc
        if not text:
            raise FileNotFoundError(f"{url}: the shard index is empty or missing; check the set's location")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{url}: the shard index is not valid JSON ({exc}); rebuild the shard set") from exc
        return cls.from_dict(data, source=url)
