"""AudioCaps' published metadata and downloaded clips -> caption rows; broken entries land in the skipped report."""
from corpus_miniatures import audio_names
from miniature_audiocaps import write_audiocaps


def test_audiocaps_records_become_caption_rows_found_by_youtube_or_audiocap_id(tmp_path, make_manifest):
    rows, skips = make_manifest("audiocaps", *write_audiocaps(tmp_path))
    assert [row["id"] for row in rows] == ["audiocaps/test/103549", "audiocaps/test/103548", "audiocaps/test/103541"]
    assert [row["text"] for row in rows] == ["Constant rattling noise and sharp vibrations",
                                             "A rattling and vibrating engine", "A man talks, then a car passes"]
    assert audio_names(rows) == ["7fmOlUlwoNg.wav", "7fmOlUlwoNg.wav", "103541.wav"]
    assert rows[0] == {"id": "audiocaps/test/103549", "task": "caption", "audio": rows[0]["audio"],
                       "audio_lang": "unknown", "text_lang": "en", "instruction": "caption_audiocaps",
                       "text": "Constant rattling noise and sharp vibrations"}
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("test.csv:5", "audio for YouTube id GoneVideoId not downloaded"),
        ("test.csv:6", "empty caption"),
    ]


def test_an_unknown_split_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    arguments = ["audiocaps", "--root", str(tmp_path), "--out", str(tmp_path / "m.jsonl"), "--split", "dev"]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["mqa-make-manifest: audiocaps: unknown split 'dev'; use one of train, val, test"]
