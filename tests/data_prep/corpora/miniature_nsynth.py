"""A miniature NSynth folder: nsynth-valid's examples.json and audio, valid and broken notes alike."""
from __future__ import annotations

import json
from pathlib import Path

from corpus_miniatures import write_audio, write_text


def note_record(note: str, pitch: int, velocity: int, family: str, source: str) -> dict:
    return {"note": 1, "note_str": note, "instrument": 2, "instrument_str": note.rsplit("-", 2)[0], "pitch": pitch,
            "velocity": velocity, "sample_rate": 16000, "qualities": [0] * 10, "qualities_str": [],
            "instrument_family": 4, "instrument_family_str": family, "instrument_source": 0,
            "instrument_source_str": source}


def write_nsynth(root: Path) -> tuple[Path, str | None]:
    """NSynth's valid split: two notes, one without audio, no velocity, a non-object record, audio without record."""
    folder = root / "nsynth"
    split = folder / "nsynth-valid"
    records = {
        "keyboard_acoustic_004-060-100": note_record("keyboard_acoustic_004-060-100", 60, 100, "keyboard", "acoustic"),
        "synth_lead_synthetic_000-021-025": note_record("synth_lead_synthetic_000-021-025", 21, 25, "synth_lead",
                                                        "synthetic"),
        "bass_electronic_018-022-050": note_record("bass_electronic_018-022-050", 22, 50, "bass", "electronic"),
        "guitar_acoustic_010-030-075": {**note_record("guitar_acoustic_010-030-075", 30, 75, "guitar", "acoustic"),
                                        "velocity": None},
        "organ_electronic_001-040-127": "not a record",
    }
    write_text(split / "examples.json", json.dumps(records, indent=4))
    for note in ("keyboard_acoustic_004-060-100", "synth_lead_synthetic_000-021-025", "guitar_acoustic_010-030-075",
                 "reed_acoustic_011-050-100"):
        write_audio(split / "audio" / f"{note}.wav")
    return folder, "valid"


MINIATURES = {"nsynth": write_nsynth}
