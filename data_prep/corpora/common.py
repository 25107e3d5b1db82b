"""What every corpus builder shares: the `Corpus` description, `Skip` records, the layout error, and readers for the
metadata formats corpora publish (CSV/TSV with a header, plain `ID TEXT` lists), language-code mapping and audio
lookup, each reporting the file and line it is reading.

Two kinds of trouble, treated differently:
- the layout itself is wrong (a metadata file missing, a header without the columns the format defines): nothing
  can be built, so `CorpusLayoutError` stops the run with one line naming the file and what to do;
- one entry is unusable (its audio is missing, its label empty, its language without a Qwen-Audio tag): the entry
  becomes a `Skip` with its file and line, and the build goes on.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from megatron_qwen_audio.text.special_tokens import AUDIO_LANGUAGES

# Language codes as corpora write them (ISO 639-1, Common Voice locales, ISO 639-3 names) -> Qwen-Audio's tags.
LANGUAGE_ALIASES = {
    "en": "en", "eng": "en", "english": "en",
    "zh": "zh", "zh-cn": "zh", "zh_cn": "zh", "cmn": "zh", "zho": "zh", "chinese": "zh", "mandarin": "zh",
    "de": "de", "deu": "de", "ger": "de", "german": "de",
    "es": "es", "spa": "es", "spanish": "es",
    "ko": "ko", "kor": "ko", "korean": "ko",
    "fr": "fr", "fra": "fr", "fre": "fr", "french": "fr",
    "ja": "ja", "jpn": "ja", "japanese": "ja",
    "it": "it", "ita": "it", "italian": "it",
}
TRADITIONAL_CHINESE = ("zh-tw", "zh-hk", "zh_tw", "zh_hk")  # audio in Chinese, text in traditional characters


@dataclass(frozen=True)
class Skip:
    """An entry of the corpus that did not become a row: where it is (file:line or a path) and why."""

    where: str
    reason: str


Row = dict  # one manifest sample (data_prep/manifest.py), audio paths absolute


@dataclass(frozen=True)
class Corpus:
    """One corpus layout: `rows(root, split)` reads it. `splits` lists the accepted --split values, the first being
    the default (empty: the corpus has no split notion and --split is refused)."""

    description: str  # one line: the layout read and the tasks emitted
    splits: tuple[str, ...]
    rows: Callable[[Path, str | None], Iterable[Row | Skip]]


class CorpusLayoutError(ValueError):
    """The corpus folder does not have the published layout; the message names the file and what to do."""


def require_file(path: Path, what: str) -> Path:
    """`path` if it is a file, else a CorpusLayoutError naming it as `what`."""
    if not path.is_file():
        raise CorpusLayoutError(f"{path}: missing; expected {what} (is --root the corpus folder?)")
    return path


def read_json(path: Path, what: str) -> object:
    """The JSON document in `path` (`what` names it in messages); a missing or invalid file is a CorpusLayoutError."""
    with open(require_file(path, what), encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise CorpusLayoutError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}); is the download "
                                    "complete and the file the published one?") from None


def read_table(path: Path, columns: Sequence[str], delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for every record of a CSV/TSV file with a header; a header lacking any of `columns` is a
    CorpusLayoutError. Line numbers are the file's (the header is line 1), so a Skip can point at the record."""
    with open(require_file(path, "a metadata table"), newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else
                                csv.QUOTE_NONE)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            raise CorpusLayoutError(f"{path}: header lacks column(s) {', '.join(missing)} (has "
                                    f"{', '.join(reader.fieldnames or [])}); is this the published file?")
        for record in reader:
            yield reader.line_num, {key: (value or "").strip() for key, value in record.items() if key is not None}


def read_id_text_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, id, text) of a `ID TEXT...` list (Kaldi `text`, LibriSpeech `.trans.txt`, AISHELL); blank lines
    are passed over, a line with an id and no text comes back with text ''."""
    with open(require_file(path, "an 'ID TEXT' transcript list"), encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            parts = line.strip().split(maxsplit=1)
            if parts:
                yield line_number, parts[0], parts[1] if len(parts) > 1 else ""


def speech_language(code: str) -> tuple[str, str] | None:
    """A corpus language code -> (audio_lang, text_lang) tags, or None when Qwen-Audio has no tag for it.
    Traditional-Chinese locales are spoken Chinese written in traditional characters (`zh`, `zh_tr`)."""
    normalized = code.strip().lower()
    if normalized in TRADITIONAL_CHINESE:
        return "zh", "zh_tr"
    language = LANGUAGE_ALIASES.get(normalized) or LANGUAGE_ALIASES.get(normalized.split("-")[0])
    if language is None or language not in AUDIO_LANGUAGES:
        return None
    return language, language


def no_language_tag(code: str) -> str:
    """The Skip reason for a language without a Qwen-Audio tag."""
    return (f"language {code!r} has no Qwen-Audio language tag (tags: {', '.join(AUDIO_LANGUAGES[:-1])}); "
            "it cannot be conditioned on")


def audio_or_skip(path: Path, where: str) -> Path | Skip:
    """`path` (absolute) if the audio file exists, else a Skip saying which file is missing."""
    if path.is_file():
        return path.absolute()
    return Skip(where, f"audio file {path} not found")


def checked_split(split: str | None, splits: Sequence[str], corpus: str) -> str:
    """The split to read: `split`, or the corpus's first split; an unknown split is a CorpusLayoutError."""
    chosen = split if split is not None else splits[0]
    if chosen not in splits:
        raise CorpusLayoutError(f"{corpus}: unknown split {chosen!r}; use one of {', '.join(splits)}")
    return chosen
