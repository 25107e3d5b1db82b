"""CoVoST 2 speech translation, read from the Common Voice language folder of the source language as --root.

The folder holds Common Voice's `clips/` and the CoVoST 2 split tables made by its `get_covost_splits.py`:
`covost_v2.SRC_TGT.SPLIT.tsv` (tab-separated, columns path, sentence, translation, client_id; SPLIT train, dev,
test). The --split value names the table: `SRC_TGT.SPLIT`, e.g. `fr_en.train` or `en_de.dev`, for the 21 X -> en
and 15 en -> X pairs of CoVoST 2.

Rows: task translate, audio_lang = the source language's tag, text_lang = the target's, instruction `itn`, text =
the translation. Skip reasons: the pair's source or target language has no Qwen-Audio tag (every record of the
table), the translation is empty, the clip is missing from clips/.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_prep.corpora.common import Corpus, Row, Skip, checked_split, no_language_tag, speech_language
from data_prep.corpora.commonvoice import RowFields, clip_rows

TO_ENGLISH = ("fr", "de", "es", "ca", "it", "ru", "zh-CN", "pt", "fa", "et", "mn", "nl", "tr", "ar", "sv-SE", "lv",
              "sl", "ta", "ja", "id", "cy")
FROM_ENGLISH = ("de", "tr", "fa", "sv-SE", "mn", "zh-CN", "cy", "ca", "sl", "et", "id", "ar", "ta", "lv", "ja")
PAIRS = tuple(f"{source}_en" for source in TO_ENGLISH) + tuple(f"en_{target}" for target in FROM_ENGLISH)
SPLITS = tuple(f"{pair}.{split}" for pair in PAIRS for split in ("train", "dev", "test"))


def translation_fields(source: str, target: str) -> RowFields:
    """The row fields of a record of the SOURCE -> TARGET table (each record skipped when a language lacks a tag)."""
    source_tags, target_tags = speech_language(source), speech_language(target)
    untagged = next((code for code, tags in ((source, source_tags), (target, target_tags)) if tags is None), None)

    def fields(record: dict[str, str]) -> Row | str:
        if untagged is not None:
            return no_language_tag(untagged)
        if not record["translation"]:
            return "empty translation"
        return {"task": "translate", "audio_lang": source_tags[0], "text_lang": target_tags[1], "instruction": "itn",
                "text": record["translation"]}
    return fields


def covost_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, SPLITS, "covost2")
    pair, _ = split.split(".")
    source, target = pair.split("_")
    return clip_rows(root, f"covost_v2.{split}.tsv", ("translation",), f"covost2/{split}",
                     translation_fields(source, target))


CORPORA = {"covost2": Corpus("CoVoST 2 tables in the source's Common Voice folder: speech translation (tagged pairs)",
                             SPLITS, covost_rows)}
