"""Sound-event classification corpora: ESC-50 and FSD50K, as keyword rows (`<|startofanalysis|><|unknown|>
<|keyword|><|en|><|notimestamps|><|INSTRUCTION|>` LABELS). Labels are written as words: underscores become spaces
and the label is lower-cased ("chirping_birds" -> "chirping birds").

ESC-50 (`esc50`), ROOT = the ESC-50 folder (ESC-50-master):
  meta/esc50.csv   columns filename, fold, target, category, esc10, src_file, take
  audio/FILENAME   the 5 s clips
  Splits: `all` (default, every clip) or `fold1`..`fold5` (the clips of that cross-validation fold). Rows: task
  keyword, audio_lang unknown, text_lang en, instruction `event`, text = the category as words ("dog",
  "chirping birds"); id `esc50/FILENAME`.

FSD50K (`fsd50k`), ROOT = the FSD50K folder:
  FSD50K.ground_truth/dev.csv    columns fname, labels, mids, split (train / val)
  FSD50K.ground_truth/eval.csv   columns fname, labels, mids
  FSD50K.dev_audio/FNAME.wav, FSD50K.eval_audio/FNAME.wav
  Splits: `train` (dev.csv records with split train, default), `val` (split val), `eval` (eval.csv). Rows: task
  keyword, audio_lang unknown, text_lang en, instruction `audioset_ontology` (the labels are AudioSet ontology
  classes), text = the comma-separated labels as words joined by ", " in the file's order ("Bark,Dog" -> "bark,
  dog"); id `fsd50k/SPLIT/FNAME`.

Skipped, with the csv file and line: a clip whose audio file is missing ("audio file ... not found"), an empty
category / labels field ("empty category", "empty labels"), and a dev.csv record whose split is neither train nor
val ("split 'x' is neither train nor val").
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_prep.corpora.common import Corpus, Row, Skip, audio_or_skip, checked_split, read_table

ESC50_SPLITS = ("all", "fold1", "fold2", "fold3", "fold4", "fold5")
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
FSD50K_SPLITS = ("train", "val", "eval")
FSD50K_DEV_SPLITS = ("train", "val")  # the values of dev.csv's split column


def label_as_words(label: str) -> str:
    """A corpus label as lower-case words: "Domestic_animals_and_pets" -> "domestic animals and pets"."""
    return " ".join(label.replace("_", " ").split()).lower()


def keyword_row(row_id: str, audio: Path, instruction: str, text: str) -> Row:
    """A non-speech classification row: English label words under the given output instruction."""
    return {"id": row_id, "task": "keyword", "audio": str(audio), "audio_lang": "unknown", "text_lang": "en",
            "instruction": instruction, "text": text}


def esc50_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, ESC50_SPLITS, "esc50")
    metadata = root / "meta" / "esc50.csv"
    for line, record in read_table(metadata, ESC50_COLUMNS):
        if split != "all" and f"fold{record['fold']}" != split:
            continue
        where = f"{metadata}:{line}"
        if not record["category"]:
            yield Skip(where, "empty category")
            continue
        audio = audio_or_skip(root / "audio" / record["filename"], where)
        if isinstance(audio, Skip):
            yield audio
            continue
        yield keyword_row(f"esc50/{record['filename']}", audio, "event", label_as_words(record["category"]))


def fsd50k_records(root: Path, split: str) -> Iterator[tuple[str, dict[str, str]] | Skip]:
    """(where, record) of the split's ground-truth records; a dev.csv record with an unknown split is a Skip."""
    ground_truth = root / "FSD50K.ground_truth"
    if split == "eval":
        metadata = ground_truth / "eval.csv"
        for line, record in read_table(metadata, ("fname", "labels", "mids")):
            yield f"{metadata}:{line}", record
        return
    metadata = ground_truth / "dev.csv"
    for line, record in read_table(metadata, ("fname", "labels", "mids", "split")):
        where = f"{metadata}:{line}"
        if record["split"] == split:
            yield where, record
        elif record["split"] not in FSD50K_DEV_SPLITS:
            yield Skip(where, f"split {record['split']!r} is neither train nor val")


def fsd50k_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, FSD50K_SPLITS, "fsd50k")
    audio_folder = root / ("FSD50K.eval_audio" if split == "eval" else "FSD50K.dev_audio")
    for entry in fsd50k_records(root, split):
        if isinstance(entry, Skip):
            yield entry
            continue
        where, record = entry
        labels = [label_as_words(label) for label in record["labels"].split(",") if label.strip()]
        if not labels:
            yield Skip(where, "empty labels")
            continue
        audio = audio_or_skip(audio_folder / f"{record['fname']}.wav", where)
        if isinstance(audio, Skip):
            yield audio
            continue
        yield keyword_row(f"fsd50k/{split}/{record['fname']}", audio, "audioset_ontology", ", ".join(labels))


CORPORA = {
    "esc50": Corpus("ESC-50 environmental sounds: keyword (event) labels", ESC50_SPLITS, esc50_rows),
    "fsd50k": Corpus("FSD50K sound events: keyword (AudioSet ontology) labels", FSD50K_SPLITS, fsd50k_rows),
}
