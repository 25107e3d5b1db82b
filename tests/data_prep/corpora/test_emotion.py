"""MELD's and IEMOCAP's published layouts -> emotion keyword rows; broken entries land in the skipped report."""
import pytest
from corpus_miniatures import audio_names, write_audio, write_text

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def test_meld_clips_with_extracted_audio_become_emotion_rows(tmp_path, make_manifest):
    root = tmp_path / "MELD.Raw"
    write_text(root / "dev_sent_emo.csv", MELD_HEADER +
               '1,"Oh my God, he\'s lost it.",Phoebe,surprise,negative,0,0,4,7,"00:20:57,256","00:20:58,595"\n'
               "2,Yeah.,Joey,joy,positive,0,1,4,7,\"00:20:59,000\",\"00:21:00,000\"\n"
               "3,Hmm.,Ross,,neutral,0,2,4,7,\"00:21:01,000\",\"00:21:02,000\"\n"
               "4,Only video.,Rachel,neutral,neutral,1,0,4,7,\"00:21:03,000\",\"00:21:04,000\"\n"
               "5,Nothing.,Monica,anger,negative,1,1,4,7,\"00:21:05,000\",\"00:21:06,000\"\n")
    media = root / "dev_splits_complete"
    write_audio(media / "dia0_utt0.wav")
    write_audio(media / "dia0_utt1.flac")
    write_text(media / "dia0_utt1.mp4", "not audio")
    write_text(media / "dia1_utt0.mp4", "not audio")
    rows, skips = make_manifest("meld", root, split="dev")
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


IEMOCAP_EVALUATION = (
    "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n"
    "\n"
    "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
    "C-E2:\tNeutral;\t()\n"
    "A-E3:\tval 3; act 2; dom  2;\t()\n"
    "\n"
    "[10.0100 - 11.3925]\tSes01F_impro01_F001\txxx\t[2.5000, 3.0000, 3.0000]\n"
    "\n"
    "[14.8872 - 18.0175]\tSes01F_impro01_M000\texc\t[3.5000, 3.5000, 3.0000]\n"
    "\n"
    "[19.2900 - 20.7875]\tSes01F_impro01_M001\toth\t[3.0000, 2.0000, 2.5000]\n"
    "[21.0000 - 22.0000]\tSes01F_impro01_M002\tbor\t[3.0000, 2.0000, 2.5000]\n"
    "[23.0000 - 24.0000]\tSes01F_impro01_M003\n"
    "[25.0000 - 26.0000]\tSes01F_impro01_F002\tfru\t[2.0000, 3.0000, 3.0000]\n"
)


@pytest.fixture
def iemocap(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    write_text(root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt", IEMOCAP_EVALUATION)
    write_text(root / "Session1" / "dialog" / "EmoEvaluation" / "Categorical" / "Ses01F_impro01_e2_cat.txt", "x\n")
    for utterance in ("F000", "F001", "M000"):
        write_audio(root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / f"Ses01F_impro01_{utterance}.wav")
    write_text(root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02M_script01_1.txt",
               "[1.0000 - 2.0000]\tSes02M_script01_1_M000\tang\t[1.5000, 4.0000, 4.0000]\n")
    write_audio(root / "Session2" / "sentences" / "wav" / "Ses02M_script01_1" / "Ses02M_script01_1_M000.wav")
    for session in ("Session3", "Session4", "Session5"):
        (root / session / "dialog" / "EmoEvaluation").mkdir(parents=True)
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
