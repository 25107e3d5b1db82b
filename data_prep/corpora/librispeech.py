"""LibriSpeech (openslr 12): read English audiobooks, `LibriSpeech/SPLIT/SPEAKER/CHAPTER/`.

Each chapter folder holds `SPEAKER-CHAPTER.trans.txt` (`UTTERANCE-ID TRANSCRIPT`, upper case, no punctuation) and one
`UTTERANCE-ID.flac` per line. Rows: task transcribe, en -> en, instruction `wo_itn` (spoken form, as LibriSpeech's
transcripts are), the transcript lower-cased: the corpus's capitals carry no information, and Qwen-Audio's
LibriSpeech outputs are lower case. A transcript line without its flac, or a flac without a transcript line, is
skipped with the reason.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_prep.corpora.common import (
    Corpus,
    CorpusLayoutError,
    Row,
    Skip,
    audio_or_skip,
    checked_split,
    read_id_text_lines,
)

SPLITS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean",
          "test-other")


def librispeech_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, SPLITS, "librispeech")
    folder = root / split
    if not folder.is_dir():
        raise CorpusLayoutError(f"{folder}: missing; --root must be the LibriSpeech folder holding {split}/")
    for transcript in sorted(folder.glob("*/*/*.trans.txt")):
        listed = set()
        for line, utterance, text in read_id_text_lines(transcript):
            listed.add(utterance)
            where = f"{transcript}:{line}"
            if not text:
                yield Skip(where, f"utterance {utterance} has no transcript text")
                continue
            audio = audio_or_skip(transcript.parent / f"{utterance}.flac", where)
            if isinstance(audio, Skip):
                yield audio
                continue
            yield {"id": f"librispeech/{split}/{utterance}", "task": "transcribe", "audio": str(audio),
                   "audio_lang": "en", "text_lang": "en", "instruction": "wo_itn", "text": text.lower()}
        for unlisted in sorted(transcript.parent.glob("*.flac")):
            if unlisted.stem not in listed:
                yield Skip(str(unlisted), f"no line for {unlisted.stem} in {transcript.name}")


CORPORA = {"librispeech": Corpus("LibriSpeech audiobooks: en transcription", SPLITS, librispeech_rows)}
