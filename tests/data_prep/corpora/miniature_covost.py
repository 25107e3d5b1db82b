"""CoVoST 2's miniature: a fr_en split table in French's Common Voice folder."""
from __future__ import annotations

from pathlib import Path

from corpus_miniatures import write_audio, write_text

HEADER = "path\tsentence\ttranslation\tclient_id\n"


def write_covost2(root: Path) -> tuple[Path, str | None]:
    """covost_v2.fr_en.dev.tsv: 1 translated clip, 1 record without translation, 1 whose clip is missing."""
    french = root / "cv-corpus-4" / "fr"
    write_text(french / "covost_v2.fr_en.dev.tsv", HEADER
               + "common_voice_fr_1.mp3\tBonjour à tous.\tHello everyone.\tc1\n"
               + "common_voice_fr_2.mp3\tMerci.\t\tc1\n"
               + "common_voice_fr_3.mp3\tAu revoir.\tGoodbye.\tc2\n")
    for number in (1, 2):
        write_audio(french / "clips" / f"common_voice_fr_{number}.mp3")
    return french, "fr_en.dev"


MINIATURES = {"covost2": write_covost2}
