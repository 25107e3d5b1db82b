"""GigaSpeech's and WenetSpeech's JSON metadata -> rows cutting segments out of long recordings; broken segments
land in the skipped report."""
import json
from pathlib import Path

import numpy as np
import soundfile
from corpus_miniatures import audio_names, write_text


def write_opus(path: Path, seconds: float) -> Path:
    """A silent Ogg Opus recording, as both corpora publish theirs (write_audio cannot pick Opus from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(int(seconds * 16000), dtype=np.float32), 16000, format="OGG", subtype="OPUS")
    return path


def segment(sid: str, begin: float, end: float, subsets: list[str], **text: object) -> dict:
    return {"sid": sid, "speaker": "N/A", "begin_time": begin, "end_time": end, "subsets": subsets, **text}


def write_metadata(path: Path, recordings: list[tuple[str, list[dict]]]) -> None:
    audios = [{"aid": Path(audio).stem, "path": audio, "duration": 4.0, "segments": segments}
              for audio, segments in recordings]
    write_text(path, json.dumps({"dataset": path.stem, "audios": audios}, ensure_ascii=False))


def test_gigaspeech_segments_become_sentence_cased_itn_rows_of_their_split(tmp_path, make_manifest):
    root = tmp_path / "GigaSpeech"
    podcast = "audio/podcast/P0000/POD0000000004.opus"
    write_opus(root / podcast, seconds=4.0)
    training = ["{XL}", "{L}", "{M}", "{S}", "{XS}"]
    write_metadata(root / "GigaSpeech.json", [
        (podcast, [
            segment("POD0000000004_S0000000", 0.0, 1.5, training,
                    text_tn="I'M LEAVING <COMMA> CAN I PULL ZAHRA ASIDE <QUESTIONMARK> YES <PERIOD>"),
            segment("POD0000000004_S0000001", 1.5, 2.0, training, text_tn="<MUSIC>"),
            segment("POD0000000004_S0000002", 2.0, 2.0, training, text_tn="HELLO"),
            segment("POD0000000004_S0000003", 0.0, 31.0, training, text_tn="TOO LONG"),
            segment("POD0000000004_S0000004", 2.0, 2.5, ["{XL}"], text_tn="ONLY IN XL"),
            segment("POD0000000004_S0000005", 2.5, 3.0, training, text_tn="<COMMA> WELL <EXCLAMATIONPOINT>"),
            segment("POD0000000004_S0000006", 3.0, 3.5, training, text_tn="HELLO <NOISE> THERE"),
            segment("POD0000000004_S0000007", 3.5, 4.0, training, text_tn="<PERIOD>"),
        ]),
        ("audio/youtube/P0001/YOU0000000315.opus", [
            segment("YOU0000000315_S0000000", 0.0, 1.0, training, text_tn="MISSING AUDIO"),
            segment("YOU0000000315_S0000001", 1.0, 2.0, training, text_tn="TWICE"),
        ]),
    ])
    rows, skips = make_manifest("gigaspeech", root, split="XS")
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
    root = tmp_path / "WenetSpeech"
    video = "audio/train/youtube/B00000/Y0000000000_--5llN02F84.opus"
    write_opus(root / video, seconds=4.0)
    write_metadata(root / "WenetSpeech.json", [
        (video, [
            segment("Y0000000000_--5llN02F84_S00000", 0.5, 2.0, ["L"], text="怎么 样 这些 日子 住 得 还 习惯 吧",
                    confidence=1.0),
            segment("Y0000000000_--5llN02F84_S00001", 2.0, 3.5, ["S", "M", "L"], text="我 用 iPhone  X 拍 的 ",
                    confidence=0.6),
            segment("Y0000000000_--5llN02F84_S00002", 3.5, 4.0, ["L"], text=" ", confidence=1.0),
            segment("Y0000000000_--5llN02F84_S00003", 1.0, 0.5, ["L"], text="倒着", confidence=1.0),
            segment("Y0000000000_--5llN02F84_S00004", 0.0, 1.0, ["DEV"], text="开发", confidence=1.0),
        ]),
        ("audio/train/podcast/B00001/X0000000001_100638174_S00037.opus", [
            segment("X0000000001_100638174_S00037_S00000", 0.0, 1.0, ["L"], text="没有 音频", confidence=1.0),
        ]),
    ])
    rows, skips = make_manifest("wenetspeech", root, split="L")
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
