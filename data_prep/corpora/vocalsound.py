"""VocalSound: non-speech human vocal sounds, `ROOT/audio_16k/SPEAKER_N_LABEL.wav`.

File names are the speaker (e.g. `f0003`), the take number and the label, e.g. `f0003_0_cough.wav`,
`m0021_2_throatclearing.wav`; the labels are laughter, sigh, cough, throatclearing, sneeze, sniff. Every wav in
`audio_16k/` is read (the published split lists are not used, so the corpus has no splits). Rows: task keyword,
audio_lang unknown, text_lang en, instruction `vocal_classification`, the label as words ("throat clearing" for
throatclearing). Skipped (where: the wav): a name that is not `SPEAKER_N_LABEL.wav`, an unknown label.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from data_prep.corpora.common import Corpus, CorpusLayoutError, Row, Skip

VOCAL_SOUND_LABELS = {"laughter": "laughter", "sigh": "sigh", "cough": "cough", "throatclearing": "throat clearing",
                      "sneeze": "sneeze", "sniff": "sniff"}
FILE_NAME = re.compile(r"(?P<speaker>[A-Za-z0-9]+)_(?P<take>\d+)_(?P<label>[A-Za-z]+)\.wav")


def vocal_sound_row(wav: Path) -> Row | Skip:
    """The clip's row, or a Skip when its name does not give a known label."""
    match = FILE_NAME.fullmatch(wav.name)
    if match is None:
        return Skip(str(wav), "file name is not SPEAKER_N_LABEL.wav (e.g. f0003_0_cough.wav)")
    label = match["label"]
    if label not in VOCAL_SOUND_LABELS:
        return Skip(str(wav), f"unknown label {label!r} (known: {', '.join(VOCAL_SOUND_LABELS)})")
    return {"id": f"vocalsound/{wav.stem}", "task": "keyword", "audio": str(wav.absolute()), "audio_lang": "unknown",
            "text_lang": "en", "instruction": "vocal_classification", "text": VOCAL_SOUND_LABELS[label]}


def vocalsound_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    folder = root / "audio_16k"
    if not folder.is_dir():
        raise CorpusLayoutError(f"{folder}: missing; --root must be the VocalSound folder holding audio_16k/")
    for wav in sorted(folder.glob("*.wav")):
        yield vocal_sound_row(wav)


CORPORA = {"vocalsound": Corpus("VocalSound human vocal sounds: keyword (vocal_classification)", (),
                                vocalsound_rows)}
