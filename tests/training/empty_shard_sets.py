"""Shard-set folders that satisfy validate(), which checks that a local set's index exists, not what it lists."""
from __future__ import annotations

from pathlib import Path

from megatron_qwen_audio.data.shard_format import ShardSetIndex


def write_empty_shard_set(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ShardSetIndex(shards=[], manifest_lines=0, rejected=0, hours=0.0, counts={}, tokenizer_fingerprint="test",
                  builder_version="test").write(directory)
    return directory
