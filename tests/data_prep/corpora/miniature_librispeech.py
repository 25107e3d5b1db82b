"""LibriSpeech's miniature: one dev-clean chapter in the published layout."""
from __future__ import annotations

from pathlib import Path

from corpus_miniatures import write_audio, write_text


def write_librispeech(root: Path) -> tuple[Path, str | None]:
    """dev-clean chapter 84/121123: 2 utterances, a line without text, a line without audio, audio without a line."""
    chapter = root / "LibriSpeech" / "dev-clean" / "84" / "121123"
    write_text(chapter / "84-121123.trans.txt", "84-121123-0000 GO DO YOU HEAR\n"
                                                 "84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n"
                                                 "84-121123-0002\n"
                                                 "84-121123-0003 MISSING AUDIO\n")
    for utterance in ("0000", "0001", "0002", "0009"):
        write_audio(chapter / f"84-121123-{utterance}.flac")
    return root / "LibriSpeech", "dev-clean"


MINIATURES = {"librispeech": write_librispeech}
