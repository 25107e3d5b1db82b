"""NSynth's published layout -> a pitch row and an instrument row per note; broken notes land in the skipped
report."""
import json

from corpus_miniatures import audio_names, write_audio, write_text


def note_record(note: str, pitch: int, velocity: int, family: str, source: str) -> dict:
    return {"note": 1, "note_str": note, "instrument": 2, "instrument_str": note.rsplit("-", 2)[0], "pitch": pitch,
            "velocity": velocity, "sample_rate": 16000, "qualities": [0] * 10, "qualities_str": [],
            "instrument_family": 4, "instrument_family_str": family, "instrument_source": 0,
            "instrument_source_str": source}


def test_nsynth_notes_become_pitch_and_instrument_rows(tmp_path, make_manifest):
    folder = tmp_path / "nsynth" / "nsynth-valid"
    records = {
        "keyboard_acoustic_004-060-100": note_record("keyboard_acoustic_004-060-100", 60, 100, "keyboard", "acoustic"),
        "synth_lead_synthetic_000-021-025": note_record("synth_lead_synthetic_000-021-025", 21, 25, "synth_lead",
                                                        "synthetic"),
        "bass_electronic_018-022-050": note_record("bass_electronic_018-022-050", 22, 50, "bass", "electronic"),
        "guitar_acoustic_010-030-075": {**note_record("guitar_acoustic_010-030-075", 30, 75, "guitar", "acoustic"),
                                        "velocity": None},
        "organ_electronic_001-040-127": "not a record",
    }
    write_text(folder / "examples.json", json.dumps(records, indent=4))
    for note in ("keyboard_acoustic_004-060-100", "synth_lead_synthetic_000-021-025", "guitar_acoustic_010-030-075",
                 "reed_acoustic_011-050-100"):
        write_audio(folder / "audio" / f"{note}.wav")
    rows, skips = make_manifest("nsynth", tmp_path / "nsynth", split="valid")
    assert [(row["id"], row["instruction"], row["text"]) for row in rows] == [
        ("nsynth/valid/keyboard_acoustic_004-060-100/pitch", "note_analysis", "pitch 60, velocity 100"),
        ("nsynth/valid/keyboard_acoustic_004-060-100/instrument", "music_description", "keyboard, acoustic"),
        ("nsynth/valid/synth_lead_synthetic_000-021-025/pitch", "note_analysis", "pitch 21, velocity 25"),
        ("nsynth/valid/synth_lead_synthetic_000-021-025/instrument", "music_description", "synth lead, synthetic"),
    ]
    assert audio_names(rows) == ["keyboard_acoustic_004-060-100.wav"] * 2 + ["synth_lead_synthetic_000-021-025.wav"] * 2
    assert rows[0] == {"id": "nsynth/valid/keyboard_acoustic_004-060-100/pitch", "task": "keyword",
                       "audio": rows[0]["audio"], "audio_lang": "unknown", "text_lang": "en",
                       "instruction": "note_analysis", "text": "pitch 60, velocity 100"}
    missing = folder / "audio" / "bass_electronic_018-022-050.wav"
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("examples.json:bass_electronic_018-022-050", f"audio file {missing} not found"),
        ("examples.json:guitar_acoustic_010-030-075", "record lacks velocity"),
        ("examples.json:organ_electronic_001-040-127", "record is not a JSON object (got str)"),
        ("reed_acoustic_011-050-100.wav", "no record for reed_acoustic_011-050-100 in examples.json"),
    ]


def test_a_split_without_examples_json_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    (tmp_path / "nsynth" / "nsynth-train" / "audio").mkdir(parents=True)
    assert main(["nsynth", "--root", str(tmp_path / "nsynth"), "--out", str(tmp_path / "m.jsonl")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "examples.json: missing; expected NSynth's examples.json" in error[0]
