"""Mozilla Common Voice: read sentences, one language folder `cv-corpus-*/LOCALE/` as --root.

The folder holds `clips/*.mp3` and one TSV per split (`train.tsv`, `dev.tsv`, `test.tsv`, `validated.tsv`,
`other.tsv`, `invalidated.tsv`), tab-separated with a header: client_id, path (the clip's name in clips/), sentence,
up_votes, down_votes, age, gender, accents, locale, segment (newer releases add sentence_id, sentence_domain,
variant). Columns path, sentence and locale are required (and age, gender for speaker rows).

- `commonvoice`: task transcribe, audio_lang/text_lang from the record's locale (zh-TW, zh-HK: spoken zh written
  zh_tr), instruction `itn` (the sentences are cased and punctuated), text = sentence.
- `commonvoice-speaker`: task keyword, instruction `speaker_meta`, audio_lang from the locale, text_lang en, text =
  the speaker's gender and age group as words, e.g. "female, twenties" (either alone when only one is given;
  "do_not_wish_to_say" counts as not given).

Skip reasons: the sentence is empty (commonvoice); the locale has no Qwen-Audio language tag; neither age nor gender
is given, or one has a value Common Voice does not define (commonvoice-speaker); the clip is missing from clips/.

`clip_rows` reads any TSV of this layout: CoVoST 2 (covost.py) uses it for its translation tables.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from data_prep.corpora.common import (
    Corpus,
    CorpusLayoutError,
    Row,
    Skip,
    audio_or_skip,
    checked_split,
    no_language_tag,
    read_table,
    speech_language,
)

SPLITS = ("train", "dev", "test", "validated", "other", "invalidated")

# Common Voice's gender values (older releases: male/female/other; newer ones the longer names) -> words.
GENDER_WORDS = {
    "male": "male", "female": "female", "other": "other gender",
    "male_masculine": "male", "female_feminine": "female", "intersex": "intersex", "transgender": "transgender",
    "non-binary": "non-binary",
}
# Common Voice's age groups -> words (the corpus spells the forties "fourties").
AGE_WORDS = {
    "teens": "teens", "twenties": "twenties", "thirties": "thirties", "fourties": "forties", "forties": "forties",
    "fifties": "fifties", "sixties": "sixties", "seventies": "seventies", "eighties": "eighties",
    "nineties": "nineties",
}
NOT_GIVEN = ("", "do_not_wish_to_say")

RowFields = Callable[[dict[str, str]], Row | str]  # a record -> the row's fields, or why it is skipped


def clip_rows(root: Path, table_name: str, columns: Sequence[str], id_prefix: str,
              fields: RowFields) -> Iterator[Row | Skip]:
    """One row per record of the TSV `table_name` of the Common Voice language folder `root`: `fields(record)`
    gives the row's fields (task, languages, text, ...) or the reason to skip the record, and the clip named by
    the record's `path` must be in clips/. The row's id is `ID_PREFIX/PATH`."""
    clips = root / "clips"
    if not clips.is_dir():
        raise CorpusLayoutError(f"{clips}: missing; --root must be a Common Voice language folder "
                                "(cv-corpus-*/LOCALE) holding clips/ and the TSV files")
    table = root / table_name
    for line, record in read_table(table, ("path", *columns), delimiter="\t"):
        where = f"{table}:{line}"
        sample = fields(record)
        if isinstance(sample, str):
            yield Skip(where, sample)
            continue
        audio = audio_or_skip(clips / record["path"], where)
        if isinstance(audio, Skip):
            yield audio
            continue
        yield {"id": f"{id_prefix}/{record['path']}", "audio": str(audio), **sample}


def transcription_fields(record: dict[str, str]) -> Row | str:
    if not record["sentence"]:
        return "empty sentence"
    languages = speech_language(record["locale"])
    if languages is None:
        return no_language_tag(record["locale"])
    audio_lang, text_lang = languages
    return {"task": "transcribe", "audio_lang": audio_lang, "text_lang": text_lang, "instruction": "itn",
            "text": record["sentence"]}


def speaker_fields(record: dict[str, str]) -> Row | str:
    languages = speech_language(record["locale"])
    if languages is None:
        return no_language_tag(record["locale"])
    words = []
    for column, known in (("gender", GENDER_WORDS), ("age", AGE_WORDS)):
        value = record[column].lower()
        if value in NOT_GIVEN:
            continue
        if value not in known:
            return f"{column} {record[column]!r} is not a Common Voice value ({', '.join(known)})"
        words.append(known[value])
    if not words:
        return "no age or gender given"
    return {"task": "keyword", "audio_lang": languages[0], "text_lang": "en", "instruction": "speaker_meta",
            "text": ", ".join(words)}


def commonvoice_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, SPLITS, "commonvoice")
    return clip_rows(root, f"{split}.tsv", ("sentence", "locale"), f"commonvoice/{split}", transcription_fields)


def commonvoice_speaker_rows(root: Path, split: str | None) -> Iterator[Row | Skip]:
    split = checked_split(split, SPLITS, "commonvoice-speaker")
    return clip_rows(root, f"{split}.tsv", ("locale", "gender", "age"), f"commonvoice-speaker/{split}",
                     speaker_fields)


CORPORA = {
    "commonvoice": Corpus("Common Voice language folder: transcription (tagged locales)", SPLITS, commonvoice_rows),
    "commonvoice-speaker": Corpus("Common Voice language folder: speaker gender/age keywords (speaker_meta)", SPLITS,
                                  commonvoice_speaker_rows),
}
