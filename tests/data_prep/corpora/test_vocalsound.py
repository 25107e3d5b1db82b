"""VocalSound's published layout -> vocal-sound keyword rows; badly named files land in the skipped report."""
from corpus_miniatures import audio_names
from miniature_vocalsound import write_vocalsound


def test_vocalsound_file_names_give_the_label_words(tmp_path, make_manifest):
    rows, skips = make_manifest("vocalsound", *write_vocalsound(tmp_path))
    assert [(row["id"], row["text"]) for row in rows] == [("vocalsound/f0003_0_cough", "cough"),
                                                          ("vocalsound/f0003_1_laughter", "laughter"),
                                                          ("vocalsound/m0021_2_throatclearing", "throat clearing")]
    assert audio_names(rows) == ["f0003_0_cough.wav", "f0003_1_laughter.wav", "m0021_2_throatclearing.wav"]
    assert rows[0] == {"id": "vocalsound/f0003_0_cough", "task": "keyword", "audio": rows[0]["audio"],
                       "audio_lang": "unknown", "text_lang": "en", "instruction": "vocal_classification",
                       "text": "cough"}
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("f0004_0_burp.wav", "unknown label 'burp' (known: laughter, sigh, cough, throatclearing, sneeze, sniff)"),
        ("m0021_x_sigh.wav", "file name is not SPEAKER_N_LABEL.wav (e.g. f0003_0_cough.wav)"),
        ("readme.wav", "file name is not SPEAKER_N_LABEL.wav (e.g. f0003_0_cough.wav)"),
    ]


def test_a_folder_without_audio_16k_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    (tmp_path / "vocalsound").mkdir()
    assert main(["vocalsound", "--root", str(tmp_path / "vocalsound"), "--out", str(tmp_path / "m.jsonl")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "audio_16k: missing; --root must be the VocalSound folder" in error[0]
