"""Clotho's and ClothoAQA's published layouts -> caption and qa rows; broken entries land in the skipped report."""
from corpus_miniatures import audio_names, write_text
from miniature_clotho import write_clotho, write_clotho_aqa


def test_clotho_gives_one_caption_row_per_caption_and_one_skip_per_clip_without_audio(tmp_path, make_manifest):
    root, split = write_clotho(tmp_path)
    rows, skips = make_manifest("clotho", root, split)
    assert [row["id"] for row in rows] == [f"clotho/validation/Birds.wav/{number}" for number in (1, 2, 4, 5)]
    assert [row["text"] for row in rows] == ["Birds chirp.", "A bird sings, then stops.", "Chirping.",
                                             "Birds call out."]
    assert audio_names(rows) == ["Birds.wav"] * 4
    assert rows[1] == {"id": "clotho/validation/Birds.wav/2", "task": "caption", "audio": rows[1]["audio"],
                       "audio_lang": "unknown", "text_lang": "en", "instruction": "caption_clotho",
                       "text": "A bird sings, then stops."}
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("clotho_captions_validation.csv:2", "empty caption_3"),
        ("clotho_captions_validation.csv:3", f"audio file {root / 'validation' / 'Gone.wav'} not found"),
    ]


def test_clotho_aqa_keeps_every_confident_answer_as_its_own_qa_row(tmp_path, make_manifest):
    root, split = write_clotho_aqa(tmp_path)
    rows, skips = make_manifest("clotho-aqa", root, split)
    assert rows == [
        {"id": f"clotho-aqa/val/Rain.wav/{line}", "task": "qa", "audio": rows[0]["audio"], "audio_lang": "en",
         "question": "Is it raining?", "answer": "yes"} for line in (2, 3)]
    assert audio_names(rows) == ["Rain.wav", "Rain.wav"]
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("clotho_aqa_val.csv:4", "annotator not confident in the answer (confidence 'no')"),
        ("clotho_aqa_val.csv:5", "empty answer"),
        ("clotho_aqa_val.csv:6", "empty QuestionText"),
        ("clotho_aqa_val.csv:7", f"audio file {root / 'audio_files' / 'Gone.wav'} not found"),
    ]


def test_a_caption_file_without_the_caption_columns_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    write_text(tmp_path / "clotho" / "clotho_captions_development.csv", "file_name,caption\nA.wav,A sound.\n")
    assert main(["clotho", "--root", str(tmp_path / "clotho"), "--out", str(tmp_path / "m.jsonl")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "header lacks column(s) caption_1, caption_2, caption_3" in error[0]
