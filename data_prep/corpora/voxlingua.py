"""VoxLingua107 spoken language identification: `ROOT/LANGCODE/*.wav`, one folder per language (ISO 639-1 code, a
few ISO 639-3); the dev set has the same layout, so --root is either set's folder and there are no splits.

Rows: task lid, audio_lang = the folder's language tag. Skip reason: the folder's language has no Qwen-Audio tag
(one skip per wav of that folder).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_prep.corpora.common import Corpus, CorpusLayoutError, Row, Skip, no_language_tag, speech_language


def language_clips(root: Path) -> list[tuple[str, list[Path]]]:
    """(language code, its wavs) for every folder of `root` holding wavs; none is a CorpusLayoutError."""
    languages = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        wavs = sorted(folder.glob("*.wav")) if folder.is_dir() else []
        if wavs:
            languages.append((folder.name, wavs))
    if not languages:
        raise CorpusLayoutError(f"{root}: no LANGCODE/*.wav inside; --root must be the VoxLingua107 folder holding "
                                "one extracted folder per language")
    return languages


def voxlingua_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    for code, wavs in language_clips(root):
        languages = speech_language(code)
        for wav in wavs:
            if languages is None:
                yield Skip(str(wav), no_language_tag(code))
                continue
            yield {"id": f"voxlingua107/{code}/{wav.name}", "task": "lid", "audio": str(wav.absolute()),
                   "audio_lang": languages[0]}


CORPORA = {"voxlingua107": Corpus("VoxLingua107 LANGCODE/*.wav folders: language identification (tagged languages)",
                                  (), voxlingua_rows)}
