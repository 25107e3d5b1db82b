"""Miniature Clotho and ClothoAQA folders in their published layouts, valid and broken entries alike."""
from __future__ import annotations

from pathlib import Path

from corpus_miniatures import write_audio, write_text


def write_clotho(root: Path) -> tuple[Path, str | None]:
    """Clotho's validation split: a clip with an empty caption_3, and a captioned clip whose audio is missing."""
    folder = root / "clotho"
    write_text(folder / "clotho_captions_validation.csv",
               "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
               "Birds.wav,Birds chirp.,\"A bird sings, then stops.\",,Chirping.,Birds call out.\n"
               "Gone.wav,A door.,A door shuts.,A door closes.,Someone shuts a door.,A door slams.\n")
    write_audio(folder / "validation" / "Birds.wav")
    return folder, "validation"


def write_clotho_aqa(root: Path) -> tuple[Path, str | None]:
    """ClothoAQA's val split: two confident answers, then a 'no' confidence, an empty answer and question, no audio."""
    folder = root / "ClothoAQA"
    write_text(folder / "clotho_aqa_val.csv",
               "file_name,QuestionText,answer,confidence\n"
               "Rain.wav,Is it raining?,yes,yes\n"
               "Rain.wav,Is it raining?,yes,maybe\n"
               "Rain.wav,Is it raining?,no,no\n"
               "Rain.wav,What falls?,,yes\n"
               "Rain.wav,,water,yes\n"
               "Gone.wav,Is a dog barking?,yes,yes\n")
    write_audio(folder / "audio_files" / "Rain.wav")
    return folder, "val"


MINIATURES = {"clotho": write_clotho, "clotho-aqa": write_clotho_aqa}
