"""AISHELL-1's published layout -> Chinese transcription rows without word spaces; broken entries skipped."""
from corpus_miniatures import audio_names
from miniature_aishell import write_aishell1


def test_split_wavs_become_unspaced_transcription_rows(tmp_path, make_manifest):
    root, split = write_aishell1(tmp_path)
    rows, skips = make_manifest("aishell1", root, split=split)
    assert [row["text"] for row in rows] == ["而对楼市成交抑制作用最大的限购", "也成为地方政府的眼中钉"]
    assert audio_names(rows) == ["BAC009S0002W0122.wav", "BAC009S0002W0123.wav"]
    assert rows[0] == {"id": "aishell1/train/BAC009S0002W0122", "task": "transcribe", "audio": rows[0]["audio"],
                       "audio_lang": "zh", "text_lang": "zh", "instruction": "wo_itn",
                       "text": "而对楼市成交抑制作用最大的限购"}
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("aishell_transcript_v0.8.txt:4", "utterance BAC009S0002W0124 has no transcript text"),
        ("BAC009S0002W0125.wav", "no line for BAC009S0002W0125 in aishell_transcript_v0.8.txt"),
    ]
    rows, skips = make_manifest("aishell1", root, split="dev")
    assert [(row["id"], row["text"]) for row in rows] == [
        ("aishell1/dev/BAC009S0724W0121", "甚至出现交易几乎停滞的情况")]
    assert skips == []


def test_unextracted_split_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    root, _ = write_aishell1(tmp_path)
    assert main(["aishell1", "--root", str(root), "--out", str(tmp_path / "m.jsonl"), "--split", "test"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "wav/test: missing; --root must be data_aishell with wav/*.tar.gz extracted" in error[0]
