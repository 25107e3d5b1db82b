"""Build one shard: the valid samples of a fixed range of manifest lines, plus a record of what happened to each line.

A shard and its record are each written under a temporary name and renamed into place, record last, so a crash
leaves either a finished shard with its record or something a re-run rebuilds. The record holds everything the
final index needs (the shard's ShardEntry, its rejects, its audio seconds) and the settings it was built with, so a
re-run can reuse finished shards without opening them and can tell when they were built differently.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import webdataset

from data_prep.atomic_files import temporary_path, write_atomically
from data_prep.manifest import ManifestReject, read_manifest
from data_prep.sample_encoder import SampleRejected, encode_row
from megatron_qwen_audio.data.shard_format import ShardEntry, shard_name
from megatron_qwen_audio.text.tokenizer import TextTokenizer

RECORD_SUFFIX = ".record.json"
FIXED_MTIME = 0  # tar member times; fixed so that the same input always gives byte-identical shards


@dataclass(frozen=True)
class BuildSettings:
    """Everything that decides a shard's bytes apart from the code: a shard built under other settings is not reused."""

    manifest_sha256: str
    manifest_lines: int
    samples_per_shard: int
    max_tokens: int
    tokenizer_fingerprint: str
    builder_version: str


@dataclass(frozen=True)
class ShardTask:
    """Shard `index` takes manifest lines [first_line, last_line]; line `first_line` starts at byte `offset`."""

    manifest: Path
    out_dir: Path
    index: int
    offset: int
    first_line: int
    last_line: int
    settings: BuildSettings

    @property
    def tar_path(self) -> Path:
        return self.out_dir / shard_name(self.index)

    @property
    def record_path(self) -> Path:
        return record_path(self.out_dir, self.index)


@dataclass
class ShardRecord:
    entry: ShardEntry
    rejects: list[dict]  # {"line", "id", "reason"}, in line order
    audio_seconds: float
    settings: BuildSettings

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ShardRecord:
        return cls(
            entry=ShardEntry.from_dict(data["entry"]),
            rejects=data["rejects"],
            audio_seconds=data["audio_seconds"],
            settings=BuildSettings(**data["settings"]),
        )

    @classmethod
    def read(cls, path: Path) -> ShardRecord:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def record_path(out_dir: Path, shard_index: int) -> Path:
    return out_dir / (Path(shard_name(shard_index)).stem + RECORD_SUFFIX)


def build_shard(task: ShardTask, tokenizer: TextTokenizer) -> ShardRecord:
    """Write the shard's tar and record (atomically) and return the record."""
    entry = ShardEntry(name=task.tar_path.name, first_line=task.first_line, last_line=task.last_line)
    rejects: list[dict] = []
    audio_seconds = 0.0
    rows = read_manifest(task.manifest, task.offset, task.first_line, task.last_line - task.first_line + 1)
    tmp_tar = temporary_path(task.tar_path)
    with open(tmp_tar, "wb") as stream, webdataset.TarWriter(stream, encoder=False, mtime=FIXED_MTIME) as tar:
        for row in rows:
            if isinstance(row, ManifestReject):
                rejects.append({"line": row.line, "id": row.id, "reason": row.reason})
                continue
            try:
                sample = encode_row(row, tokenizer, task.settings.max_tokens)
            except SampleRejected as rejected:
                rejects.append({"line": row.line, "id": row.sample["id"], "reason": rejected.reason})
                continue
            tar.write(sample.tar_members())
            entry.samples.append(sample.index_entry())
            audio_seconds += sum(sample.seconds)
    os.replace(tmp_tar, task.tar_path)
    record = ShardRecord(entry=entry, rejects=rejects, audio_seconds=audio_seconds, settings=task.settings)
    write_atomically(task.record_path, json.dumps(record.to_dict(), ensure_ascii=False).encode("utf-8"))
    return record
