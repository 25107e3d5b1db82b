"""Miniature MELD and IEMOCAP folders in their published layouts, valid and broken entries alike."""
from __future__ import annotations

from pathlib import Path

from corpus_miniatures import write_audio, write_text

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"

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


def write_meld(root: Path) -> tuple[Path, str | None]:
    """MELD's dev split: wav and flac audio, an empty Emotion, a clip with only its mp4, a clip with no media at all."""
    folder = root / "MELD.Raw"
    write_text(folder / "dev_sent_emo.csv", MELD_HEADER +
               '1,"Oh my God, he\'s lost it.",Phoebe,surprise,negative,0,0,4,7,"00:20:57,256","00:20:58,595"\n'
               "2,Yeah.,Joey,joy,positive,0,1,4,7,\"00:20:59,000\",\"00:21:00,000\"\n"
               "3,Hmm.,Ross,,neutral,0,2,4,7,\"00:21:01,000\",\"00:21:02,000\"\n"
               "4,Only video.,Rachel,neutral,neutral,1,0,4,7,\"00:21:03,000\",\"00:21:04,000\"\n"
               "5,Nothing.,Monica,anger,negative,1,1,4,7,\"00:21:05,000\",\"00:21:06,000\"\n")
    media = folder / "dev_splits_complete"
    write_audio(media / "dia0_utt0.wav")
    write_audio(media / "dia0_utt1.flac")
    write_text(media / "dia0_utt1.mp4", "not audio")
    write_text(media / "dia1_utt0.mp4", "not audio")
    return folder, "dev"


def write_iemocap(root: Path) -> tuple[Path, str | None]:
    """IEMOCAP, all sessions: two dialogues, with xxx / oth / unknown labels, a malformed line and missing audio."""
    folder = root / "IEMOCAP_full_release"
    evaluation = folder / "Session1" / "dialog" / "EmoEvaluation"
    write_text(evaluation / "Ses01F_impro01.txt", IEMOCAP_EVALUATION)
    write_text(evaluation / "Categorical" / "Ses01F_impro01_e2_cat.txt", "x\n")
    for utterance in ("F000", "F001", "M000"):
        write_audio(folder / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / f"Ses01F_impro01_{utterance}.wav")
    write_text(folder / "Session2" / "dialog" / "EmoEvaluation" / "Ses02M_script01_1.txt",
               "[1.0000 - 2.0000]\tSes02M_script01_1_M000\tang\t[1.5000, 4.0000, 4.0000]\n")
    write_audio(folder / "Session2" / "sentences" / "wav" / "Ses02M_script01_1" / "Ses02M_script01_1_M000.wav")
    for session in ("Session3", "Session4", "Session5"):
        (folder / session / "dialog" / "EmoEvaluation").mkdir(parents=True)
    return folder, None


MINIATURES = {"meld": write_meld, "iemocap": write_iemocap}
