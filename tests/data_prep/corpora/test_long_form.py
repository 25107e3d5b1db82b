"""GigaSpeech's and WenetSpeech's JSON metadata -> rows cutting segments out of long recordings; broken segments
land in the skipped report."""
import json

from corpus_miniatures import audio_names, write_text
from miniature_long_form import write_gigaspeech, write_wenetspeech


def test_gigaspeech_segments_become_sentence_cased_itn_rows_of_their_split(tmp_path, make_manifest):
    root, split = write_gigaspeech(tmp_path)
    rows, skips = make_manifest("gigaspeech", root, split=split)
    assert [row["text"] for row in rows] == ["I'm leaving, can I pull zahra aside? Yes.", "Well!"]
    assert audio_names(rows) == ["POD0000000004.opus", "POD0000000004.opus"]
    assert rows[0] == {"id": "gigaspeech/POD0000000004_S0000000", "task": "transcribe", "audio": rows[0]["audio"],
                       "start": 0.0, "end": 1.5, "audio_lang": "en", "text_lang": "en", "instruction": "itn",
                       "text": "I'm leaving, can I pull zahra aside? Yes."}
    assert (rows[1]["id"], rows[1]["start"], rows[1]["end"]) == ("gigaspeech/POD0000000004_S0000005", 2.5, 3.0)
    missing = f"audio file {root / 'audio/youtube/P0001/YOU0000000315.opus'} not found"
    assert [(skip["where"], skip["reason"]) for skip in skips] == [
        ("POD0000000004_S0000001", "garbage utterance (<MUSIC>)"),
        ("POD0000000004_S0000002", "end_time 2.0 s is not after begin_time 2.0 s"),
        ("POD0000000004_S0000003", "the segment is 31.00 s long; the encoder takes at most 30 s"),
        ("POD0000000004_S0000006", "tag <NOISE> among the words of text_tn"),
        ("POD0000000004_S0000007", "no words in text_tn"),
        ("YOU0000000315_S0000000", missing),
        ("YOU0000000315_S0000001", missing),
    ]
    xl_rows, _ = make_manifest("gigaspeech", root, split="XL")
    assert "gigaspeech/POD0000000004_S0000004" in [row["id"] for row in xl_rows]


def test_wenetspeech_segments_become_unspaced_chinese_rows_whatever_their_confidence(tmp_path, make_manifest):
    root, split = write_wenetspeech(tmp_path)
    rows, skips = make_manifest("wenetspeech", root, split=split)
    assert [row["text"] for row in rows] == ["怎么样这些日子住得还习惯吧", "我用iPhone X拍的"]
    assert rows[1] == {"id": "wenetspeech/Y0000000000_--5llN02F84_S00001", "task": "transcribe",
                       "audio": rows[1]["audio"], "start": 2.0, "end": 3.5, "audio_lang": "zh", "text_lang": "zh",
                       "instruction": "wo_itn", "text": "我用iPhone X拍的"}
    assert audio_names(rows) == ["Y0000000000_--5llN02F84.opus"] * 2
    assert [(skip["where"], skip["reason"]) for skip in skips] == [
        ("Y0000000000_--5llN02F84_S00002", "empty text"),
        ("Y0000000000_--5llN02F84_S00003", "end_time 0.5 s is not after begin_time 1.0 s"),
        ("X0000000001_100638174_S00037_S00000",
         f"audio file {root / 'audio/train/podcast/B00001/X0000000001_100638174_S00037.opus'} not found"),
    ]
    dev_rows, dev_skips = make_manifest("wenetspeech", root, split="DEV")
    assert [row["text"] for row in dev_rows] == ["开发"] and dev_skips == []


def test_a_missing_or_foreign_json_file_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    out = str(tmp_path / "m.jsonl")
    assert main(["gigaspeech", "--root", str(tmp_path), "--out", out]) == 2
    assert "GigaSpeech.json: missing; expected the corpus's JSON metadata" in capsys.readouterr().err
    write_text(tmp_path / "WenetSpeech.json", json.dumps([{"sid": "x"}]))
    assert main(["wenetspeech", "--root", str(tmp_path), "--out", out]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and 'WenetSpeech.json: no "audios" list at the top level' in error[0]
    assert main(["wenetspeech", "--root", str(tmp_path), "--out", out, "--split", "XL"]) == 2
    assert "unknown split 'XL'" in capsys.readouterr().err
