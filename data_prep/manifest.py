"""Read sample manifests: JSONL files with one training sample per line.

A line's number (1-based) is its identity through the whole data path: shard k holds the samples of a fixed range of
lines, a sample's key is made from its line, and a malformed line becomes a reject that names that line. So lines
are read as raw bytes and counted exactly as `for line in file` counts them (a last line without a newline counts),
and a blank or undecodable line is a reject, never silently dropped.

Line format (JSON object; fields beyond these are kept and ignored here):
  id          required, non-empty string
  task        required: transcribe | translate | caption | keyword | qa | lid | chat | text
  audio       path of the clip, relative to the manifest's folder or absolute
  start, end  seconds: the clip is that range of the `audio` file (a segment of a long recording)
  audio_lang, text_lang, text, timestamps (bool), words ([{word, start, end}]), instruction, question, answer
  messages    chat/text samples: [{role, content}], content a string or a list of items, where user turns may hold
              `{"audio": path}` items (several allowed, in order) next to `{"text": ...}` items
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ManifestRow:
    """A well-formed line: the sample as written, and its audio files resolved against the manifest's folder."""

    line: int
    sample: dict
    audio_paths: tuple[Path, ...]


@dataclass(frozen=True)
class ManifestReject:
    """A line that cannot be a sample, with the reason (naming the offending field) to report back to the user."""

    line: int
    id: str | None
    reason: str


class ManifestFieldError(ValueError):
    """A field has the wrong shape; the message names the field."""


@dataclass(frozen=True)
class ManifestLayout:
    """What a single pass over the manifest tells a parallel builder: where each chunk of lines starts."""

    lines: int
    chunk_offsets: list[int]  # byte offset of line k * lines_per_chunk + 1, for each chunk k
    sha256: str  # of the whole file, so a resumed build can tell that the manifest did not change


def scan_manifest(path: str | Path, lines_per_chunk: int) -> ManifestLayout:
    """Count the lines, find the byte offset of every `lines_per_chunk`-th line, and hash the file, in one pass."""
    assert lines_per_chunk > 0, lines_per_chunk
    digest = hashlib.sha256()
    offsets: list[int] = []
    lines = position = 0
    with open(path, "rb") as handle:
        for raw in handle:
            if lines % lines_per_chunk == 0:
                offsets.append(position)
            lines += 1
            position += len(raw)
            digest.update(raw)
    return ManifestLayout(lines=lines, chunk_offsets=offsets, sha256=digest.hexdigest())


def read_manifest(
    path: str | Path, offset: int = 0, first_line: int = 1, max_lines: int | None = None
) -> Iterator[ManifestRow | ManifestReject]:
    """Parse the manifest line by line, from byte `offset` (where line `first_line` starts), at most `max_lines`."""
    path = Path(path)
    base_dir = path.absolute().parent
    with open(path, "rb") as handle:
        handle.seek(offset)
        for line, raw in enumerate(handle, start=first_line):
            if max_lines is not None and line >= first_line + max_lines:
                return
            yield parse_manifest_line(raw, line, base_dir)


def parse_manifest_line(raw: bytes, line: int, base_dir: Path) -> ManifestRow | ManifestReject:
    """One manifest line -> a row, or a reject saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return ManifestReject(line, None, f"not UTF-8 text (byte {error.start}); save the manifest as UTF-8")
    if not text.strip():
        return ManifestReject(line, None, "empty line; remove it")
    try:
        sample = json.loads(text)
    except json.JSONDecodeError as error:
        return ManifestReject(line, None, f"invalid JSON ({error.msg} at column {error.colno}); fix the line")
    if not isinstance(sample, dict):
        return ManifestReject(line, None, f"not a JSON object (got {type(sample).__name__}); write one object per line")
    sample_id = sample.get("id")
    if not isinstance(sample_id, str) or not sample_id:
        return ManifestReject(line, None, "field 'id' is missing or not a non-empty string")
    if not isinstance(sample.get("task"), str):
        return ManifestReject(line, sample_id, "field 'task' is missing or not a string")
    try:
        audio_paths = tuple(resolve_audio_path(reference, base_dir) for reference in audio_references(sample))
    except ManifestFieldError as error:
        return ManifestReject(line, sample_id, str(error))
    return ManifestRow(line, sample, audio_paths)


def audio_references(sample: dict) -> list[str]:
    """The sample's audio paths as written, in order: top-level `audio`, then `{"audio": path}` items of user turns."""
    references = []
    if "audio" in sample:
        references.append(_path_field(sample["audio"], "audio"))
    messages = sample.get("messages")
    if messages is None:
        return references
    if not isinstance(messages, list):
        raise ManifestFieldError("field 'messages' must be a list of {role, content} objects")
    for turn_index, turn in enumerate(messages):
        where = f"messages[{turn_index}]"
        if not isinstance(turn, dict):
            raise ManifestFieldError(f"{where} must be a {{role, content}} object")
        content = turn.get("content")
        if turn.get("role") != "user" or not isinstance(content, list):
            continue
        for item_index, item in enumerate(content):
            if isinstance(item, dict) and "audio" in item:
                references.append(_path_field(item["audio"], f"{where}.content[{item_index}].audio"))
    return references


def _path_field(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestFieldError(f"field '{field}' must be a non-empty path string")
    return value


def resolve_audio_path(reference: str, base_dir: Path) -> Path:
    """An audio path as written in the manifest, made absolute against the manifest's folder when relative."""
    path = Path(reference)
    return path if path.is_absolute() else base_dir / path
