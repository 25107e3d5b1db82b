"""Common Voice's miniature: a French language folder (dev.tsv in the newer header, its clips), read for
transcription and for speaker gender/age."""
from __future__ import annotations

from pathlib import Path

from corpus_miniatures import write_audio, write_text

NEW_HEADER = ("client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
              "gender", "accents", "variant", "locale", "segment")
OLD_HEADER = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents", "locale",
              "segment")


def write_tsv(path: Path, header: tuple[str, ...], records: list[dict[str, str]]) -> Path:
    """A Common Voice TSV: the header, then one line per record given as {column: value} (others left empty)."""
    lines = ["\t".join(header)] + ["\t".join(record.get(column, "") for column in header) for record in records]
    return write_text(path, "\n".join(lines) + "\n")


def clip(number: int, sentence: str, locale: str, **columns: str) -> dict[str, str]:
    return {"client_id": "c0ffee", "path": f"common_voice_{locale}_{number}.mp3", "sentence": sentence,
            "locale": locale, **columns}


def write_commonvoice(root: Path) -> tuple[Path, str | None]:
    """Common Voice 17 fr, dev.tsv: five sentences, one empty sentence, one record whose clip (number 4) is missing."""
    folder = root / "cv-corpus-17.0-2024-03-15" / "fr"
    write_tsv(folder / "dev.tsv", NEW_HEADER, [
        clip(1, "Bonjour, le monde !", "fr", gender="female_feminine", age="twenties"),
        clip(2, 'Il a dit "oui".', "fr", gender="male"),
        clip(3, "", "fr", age="fourties"),
        clip(4, "Où est le fichier ?", "fr", gender="other", age="sixties"),
        clip(5, "Sans locuteur.", "fr"),
        clip(6, "Refusé.", "fr", gender="do_not_wish_to_say"),
        clip(7, "Inconnu.", "fr", gender="robot", age="teens"),
    ])
    for number in (1, 2, 3, 5, 6, 7):
        write_audio(folder / "clips" / f"common_voice_fr_{number}.mp3")
    return folder, "dev"


def write_commonvoice_speaker(root: Path) -> tuple[Path, str | None]:
    """write_commonvoice's folder: three speakers with age/gender, a missing clip, two with neither, a robot gender."""
    return write_commonvoice(root)


MINIATURES = {"commonvoice": write_commonvoice, "commonvoice-speaker": write_commonvoice_speaker}
