"""Files that appear whole or not at all: written under a hidden temporary name beside their place and renamed onto
it at the end, so a reader (or a resumed run, or a glob over shards) never sees half a file."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def temporary_path(path: Path) -> Path:
    """A hidden name beside `path`, so shard globs never pick up a half-written file."""
    return path.with_name(f".{path.name}.tmp")


def write_atomically(path: Path, data: bytes) -> None:
    tmp = temporary_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextmanager
def atomic_text_file(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text file to write line by line; it takes its name only when the block ends without an error."""
    tmp = temporary_path(path)
    with open(tmp, "w", encoding="utf-8") as handle:
        yield handle
    os.replace(tmp, path)
