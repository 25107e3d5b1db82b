"""NSynth: single musical notes, `ROOT/nsynth-SPLIT/` for SPLIT train, valid, test.

Each split folder holds `examples.json`, one JSON object mapping every note_str to its record (note, note_str,
instrument, instrument_str, pitch, velocity, sample_rate, qualities, qualities_str, instrument_family,
instrument_family_str, instrument_source, instrument_source_str), and `audio/NOTE_STR.wav`. Two rows per note, both
task keyword, audio_lang unknown, text_lang en:
- `nsynth/SPLIT/NOTE_STR/pitch`, instruction `note_analysis`: "pitch 60, velocity 100" (MIDI numbers);
- `nsynth/SPLIT/NOTE_STR/instrument`, instruction `music_description`: "keyboard, acoustic" (instrument_family_str
  with underscores as spaces, then instrument_source_str).
Skipped, once per note: a record that is not an object or lacks one of those four fields (named), its missing wav
(where: `examples.json:NOTE_STR`, the record's key standing in for a line number); a wav in `audio/` that no record
names (where: the wav). examples.json missing or not a JSON object is a layout error.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_prep.corpora.common import Corpus, CorpusLayoutError, Row, Skip, audio_or_skip, checked_split, read_json

SPLITS = ("train", "valid", "test")
REQUIRED_FIELDS = ("pitch", "velocity", "instrument_family_str", "instrument_source_str")


def read_examples(path: Path) -> dict:
    """examples.json as its note_str -> record object; anything else is a CorpusLayoutError."""
    examples = read_json(path, "NSynth's examples.json")
    if not isinstance(examples, dict):
        raise CorpusLayoutError(f"{path}: not a JSON object of note_str -> record; is this the published file?")
    return examples


def record_problem(record: object) -> str | None:
    """Why a record cannot give the note's rows, or None."""
    if not isinstance(record, dict):
        return f"record is not a JSON object (got {type(record).__name__})"
    missing = [field for field in REQUIRED_FIELDS if record.get(field) in (None, "")]
    return f"record lacks {', '.join(missing)}" if missing else None


def note_rows(split: str, note: str, record: dict, audio: Path) -> Iterator[Row]:
    """The note's pitch/velocity row and its instrument row."""
    common = {"task": "keyword", "audio": str(audio), "audio_lang": "unknown", "text_lang": "en"}
    yield {"id": f"nsynth/{split}/{note}/pitch", **common, "instruction": "note_analysis",
           "text": f"pitch {record['pitch']}, velocity {record['velocity']}"}
    family = str(record["instrument_family_str"]).replace("_", " ")
    yield {"id": f"nsynth/{split}/{note}/instrument", **common, "instruction": "music_description",
           "text": f"{family}, {record['instrument_source_str']}"}


def nsynth_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, SPLITS, "nsynth")
    folder = root / f"nsynth-{split}"
    if not folder.is_dir():
        raise CorpusLayoutError(f"{folder}: missing; --root must be the folder holding nsynth-{split}/")
    examples_file = folder / "examples.json"
    examples = read_examples(examples_file)
    for note, record in examples.items():
        where = f"{examples_file}:{note}"
        problem = record_problem(record)
        if problem is not None:
            yield Skip(where, problem)
            continue
        audio = audio_or_skip(folder / "audio" / f"{note}.wav", where)
        if isinstance(audio, Skip):
            yield audio
            continue
        yield from note_rows(split, note, record, audio)
    for unlisted in sorted((folder / "audio").glob("*.wav")):
        if unlisted.stem not in examples:
            yield Skip(str(unlisted), f"no record for {unlisted.stem} in {examples_file.name}")


CORPORA = {"nsynth": Corpus("NSynth musical notes: keyword (note_analysis pitch/velocity, music_description "
                            "instrument)", SPLITS, nsynth_rows)}
