"""NSynth's published layout -> a pitch row and an instrument row per note; broken notes land in the skipped
report."""
from corpus_miniatures import audio_names
from miniature_nsynth import write_nsynth


def test_nsynth_notes_become_pitch_and_instrument_rows(tmp_path, make_manifest):
    root, split = write_nsynth(tmp_path)
    rows, skips = make_manifest("nsynth", root, split)
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
    missing = root / "nsynth-valid" / "audio" / "bass_electronic_018-022-050.wav"
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
