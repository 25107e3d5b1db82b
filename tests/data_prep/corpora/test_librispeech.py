"""LibriSpeech's published layout -> transcription rows; broken entries land in the skipped report."""
from corpus_miniatures import audio_names
from miniature_librispeech import write_librispeech


def test_librispeech_chapters_become_lower_case_transcription_rows(tmp_path, make_manifest):
    root, split = write_librispeech(tmp_path)
    chapter = root / split / "84" / "121123"
    rows, skips = make_manifest("librispeech", root, split=split)
    assert [row["text"] for row in rows] == ["go do you hear", "but in less than five minutes"]
    assert audio_names(rows) == ["84-121123-0000.flac", "84-121123-0001.flac"]
    assert rows[0] == {"id": "librispeech/dev-clean/84-121123-0000", "task": "transcribe", "audio": rows[0]["audio"],
                       "audio_lang": "en", "text_lang": "en", "instruction": "wo_itn", "text": "go do you hear"}
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("84-121123.trans.txt:3", "utterance 84-121123-0002 has no transcript text"),
        ("84-121123.trans.txt:4", f"audio file {chapter / '84-121123-0003.flac'} not found"),
        ("84-121123-0009.flac", "no line for 84-121123-0009 in 84-121123.trans.txt"),
    ]


def test_a_missing_split_folder_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    (tmp_path / "LibriSpeech").mkdir()
    assert main(["librispeech", "--root", str(tmp_path / "LibriSpeech"), "--out", str(tmp_path / "m.jsonl")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "train-clean-100: missing; --root must be the LibriSpeech folder" in error[0]
