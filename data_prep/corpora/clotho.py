"""Clotho v2.1 (audio captioning) and ClothoAQA (audio question answering), in their published layouts.

Clotho (`clotho`), ROOT = the folder holding the extracted release:
  clotho_captions_SPLIT.csv   columns file_name, caption_1 .. caption_5 (SPLIT: development, validation, evaluation)
  SPLIT/FILE_NAME             the clips
  Rows: one per (clip, caption): task caption, audio_lang unknown, text_lang en, instruction `caption_clotho`,
  text = the caption; id `clotho/SPLIT/FILE_NAME/N` (N = 1..5, the caption column).
  Skipped, with the csv file and line: an empty caption_N ("empty caption_N"), a clip whose audio file is missing
  (one skip for the clip, not one per caption).

ClothoAQA (`clotho-aqa`), ROOT = the ClothoAQA folder:
  clotho_aqa_SPLIT.csv   columns file_name, QuestionText, answer, confidence (SPLIT: train, val, test)
  audio_files/FILE_NAME  the clips
  Every question is listed once per annotator, each with that annotator's answer; every (question, answer) record
  is its own row: task qa, audio_lang en (the released Qwen-Audio ClothoAQA prompt is
  `<|startofanalysis|><|en|><|question|>`), question, answer; id `clotho-aqa/SPLIT/FILE_NAME/LINE` (LINE = the csv
  line of the record).
  Skipped, with the csv file and line: an empty QuestionText or answer ("empty QuestionText", "empty answer"), an
  answer whose annotator was not confident (confidence "no"), a record whose audio file is missing.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_prep.corpora.common import Corpus, Row, Skip, audio_or_skip, checked_split, read_table

CLOTHO_SPLITS = ("development", "validation", "evaluation")
CAPTION_COLUMNS = tuple(f"caption_{number}" for number in range(1, 6))
CLOTHO_AQA_SPLITS = ("train", "val", "test")
CLOTHO_AQA_COLUMNS = ("file_name", "QuestionText", "answer", "confidence")


def caption_row(row_id: str, audio: Path, instruction: str, caption: str) -> Row:
    """An English caption of a (non-speech) clip, under the given caption instruction."""
    return {"id": row_id, "task": "caption", "audio": str(audio), "audio_lang": "unknown", "text_lang": "en",
            "instruction": instruction, "text": caption}


def clotho_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, CLOTHO_SPLITS, "clotho")
    metadata = root / f"clotho_captions_{split}.csv"
    for line, record in read_table(metadata, ("file_name", *CAPTION_COLUMNS)):
        where = f"{metadata}:{line}"
        audio = audio_or_skip(root / split / record["file_name"], where)
        if isinstance(audio, Skip):
            yield audio
            continue
        for number, column in enumerate(CAPTION_COLUMNS, start=1):
            if not record[column]:
                yield Skip(where, f"empty {column}")
                continue
            yield caption_row(f"clotho/{split}/{record['file_name']}/{number}", audio, "caption_clotho",
                              record[column])


def unusable_answer(record: dict[str, str]) -> str | None:
    """Why a ClothoAQA record cannot be a row (its text is empty or its annotator not confident), or None."""
    for column in ("QuestionText", "answer"):
        if not record[column]:
            return f"empty {column}"
    if record["confidence"].lower() == "no":
        return "annotator not confident in the answer (confidence 'no')"
    return None


def clotho_aqa_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, CLOTHO_AQA_SPLITS, "clotho-aqa")
    metadata = root / f"clotho_aqa_{split}.csv"
    for line, record in read_table(metadata, CLOTHO_AQA_COLUMNS):
        where = f"{metadata}:{line}"
        reason = unusable_answer(record)
        if reason is not None:
            yield Skip(where, reason)
            continue
        audio = audio_or_skip(root / "audio_files" / record["file_name"], where)
        if isinstance(audio, Skip):
            yield audio
            continue
        yield {"id": f"clotho-aqa/{split}/{record['file_name']}/{line}", "task": "qa", "audio": str(audio),
               "audio_lang": "en", "question": record["QuestionText"], "answer": record["answer"]}


CORPORA = {
    "clotho": Corpus("Clotho v2.1 sound captions: caption (5 per clip)", CLOTHO_SPLITS, clotho_rows),
    "clotho-aqa": Corpus("ClothoAQA questions about sounds: qa (one row per annotator answer)", CLOTHO_AQA_SPLITS,
                         clotho_aqa_rows),
}
