"""MELD's and IEMOCAP's published layouts -> emotion keyword rows; broken entries land in the skipped report."""
import pytest
from corpus_miniatures import audio_names, write_text
from miniature_emotion import MELD_HEADER, write_iemocap, write_meld


def test_meld_clips_with_extracted_audio_become_emotion_rows(tmp_path, make_manifest):
    root, split = write_meld(tmp_path)
    rows, skips = make_manifest("meld", root, split)
    media = root / "dev_splits_complete"
    assert [row["text"] for row in rows] == ["surprise", "joy"]
    assert audio_names(rows) == ["dia0_utt0.wav", "dia0_utt1.flac"]
    assert rows[0] == {"id": "meld/dev/dia0_utt0", "task": "keyword", "audio": rows[0]["audio"], "audio_lang": "en",
                       "text_lang": "en", "instruction": "emotion_recognition", "text": "surprise"}
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("dev_sent_emo.csv:4", "empty Emotion"),
        ("dev_sent_emo.csv:5", f"only the mp4 video: extract its audio to dia1_utt0.wav (ffmpeg -i "
                               f"{media / 'dia1_utt0.mp4'} -ac 1 -ar 16000 {media / 'dia1_utt0.wav'})"),
        ("dev_sent_emo.csv:6", f"audio file {media / 'dia1_utt1.wav'} not found (nor .flac, nor the mp4)"),
    ]


def test_meld_without_the_split_media_folder_is_a_one_line_layout_error(tmp_path, capsys):
    from data_prep.make_manifest import main

    write_text(tmp_path / "MELD.Raw" / "train_sent_emo.csv", MELD_HEADER)
    assert main(["meld", "--root", str(tmp_path / "MELD.Raw"), "--out", str(tmp_path / "m.jsonl")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "train_splits: missing; --root must be the MELD.Raw folder" in error[0]


@pytest.fixture
def iemocap(tmp_path):
    root, _ = write_iemocap(tmp_path)
    return root


def test_iemocap_summary_lines_become_emotion_word_rows(iemocap, make_manifest):
    rows, skips = make_manifest("iemocap", iemocap)
    assert [(row["id"], row["text"]) for row in rows] == [("iemocap/Ses01F_impro01_F000", "neutral"),
                                                          ("iemocap/Ses01F_impro01_M000", "excited"),
                                                          ("iemocap/Ses02M_script01_1_M000", "angry")]
    assert audio_names(rows) == ["Ses01F_impro01_F000.wav", "Ses01F_impro01_M000.wav", "Ses02M_script01_1_M000.wav"]
    assert rows[0] == {"id": "iemocap/Ses01F_impro01_F000", "task": "keyword", "audio": rows[0]["audio"],
                       "audio_lang": "en", "text_lang": "en", "instruction": "emotion_recognition", "text": "neutral"}
    missing = iemocap / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F002.wav"
    assert [(skip["where"].split("/")[-1], skip["reason"]) for skip in skips] == [
        ("Ses01F_impro01.txt:7", "label 'xxx' (no agreement between annotators)"),
        ("Ses01F_impro01.txt:11", "label 'oth' (other: no emotion category)"),
        ("Ses01F_impro01.txt:12", "unknown category 'bor' (known: neu, hap, ang, sad, exc, fru, fea, sur, dis)"),
        ("Ses01F_impro01.txt:13", "not a '[START - END]<TAB>UTTERANCE<TAB>CATEGORY<TAB>[V, A, D]' summary line"),
        ("Ses01F_impro01.txt:14", f"audio file {missing} not found"),
    ]


def test_an_iemocap_session_split_reads_that_session_only(iemocap, make_manifest):
    rows, skips = make_manifest("iemocap", iemocap, split="Session2")
    assert [row["id"] for row in rows] == ["iemocap/Ses02M_script01_1_M000"] and skips == []


def test_iemocap_without_a_session_is_a_one_line_layout_error(iemocap, tmp_path, capsys):
    from data_prep.make_manifest import main

    (iemocap / "Session5" / "dialog" / "EmoEvaluation").rmdir()
    assert main(["iemocap", "--root", str(iemocap), "--out", str(tmp_path / "m.jsonl")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "EmoEvaluation: missing; --root must be the IEMOCAP folder" in error[0]
