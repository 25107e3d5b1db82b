"""AudioCaps (captions of AudioSet clips), ROOT = the folder holding the metadata and the downloaded audio:
  SPLIT.csv                columns audiocap_id, youtube_id, start_time, caption (SPLIT: train, val, test)
  SPLIT/YOUTUBE_ID.wav     the clip, as the common downloaders write it (already cut to the 10 s from start_time);
  SPLIT/AUDIOCAP_ID.wav    accepted too: the youtube id is tried first, then the audiocap id.
Rows: one per csv record (val and test list five captions of each clip, one per record): task caption, audio_lang
unknown, text_lang en, instruction `caption_audiocaps`, text = the caption; id `audiocaps/SPLIT/AUDIOCAP_ID`.
Skipped, with the csv file and line: an empty caption ("empty caption"), a record whose clip was not downloaded (YouTube
videos disappear: "audio for YouTube id X not downloaded").
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_prep.corpora.clotho import caption_row
from data_prep.corpora.common import Corpus, Row, Skip, checked_split, read_table

SPLITS = ("train", "val", "test")
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")


def downloaded_audio(folder: Path, record: dict[str, str]) -> Path | None:
    """The record's clip in `folder`, named by youtube id or else by audiocap id (absolute), or None."""
    for name in (record["youtube_id"], record["audiocap_id"]):
        path = folder / f"{name}.wav"
        if name and path.is_file():
            return path.absolute()
    return None


def audiocaps_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, SPLITS, "audiocaps")
    metadata = root / f"{split}.csv"
    for line, record in read_table(metadata, COLUMNS):
        where = f"{metadata}:{line}"
        if not record["caption"]:
            yield Skip(where, "empty caption")
            continue
        audio = downloaded_audio(root / split, record)
        if audio is None:
            yield Skip(where, f"audio for YouTube id {record['youtube_id']} not downloaded")
            continue
        yield caption_row(f"audiocaps/{split}/{record['audiocap_id']}", audio, "caption_audiocaps", record["caption"])


CORPORA = {"audiocaps": Corpus("AudioCaps AudioSet-clip captions: caption", SPLITS, audiocaps_rows)}
