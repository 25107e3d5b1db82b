"""Forced alignments -> transcription rows with word timestamps (Qwen-Audio's SRWT task).

Layout: ROOT, walked recursively, holds audio clips (STEM.wav or STEM.flac) and beside each its alignment, same
stem, in one of three formats:
- STEM.TextGrid: a Praat TextGrid in the long text format ("ooTextFile") as the Montreal Forced Aligner writes it;
  the words are the intervals (xmin, xmax, text) of the IntervalTier named "words" (in MFA's multi-speaker files
  "SPEAKER - words"); an empty text is silence.
- STEM.ctm: lines "UTTERANCE CHANNEL START DURATION WORD [CONFIDENCE]" of one utterance (";;" lines are comments).
- STEM.json: {"language": "en", "words": [{"word", "start", "end"}, ...]} or a bare list of such words.
Silence and unknown-word tokens ("", "sil", "sp", "<eps>", "<unk>", in any case) are dropped from the word list.
The language: ROOT/language.txt holds one code (e.g. "en") for every clip; a JSON alignment's "language" overrides
it; a clip with neither is a CorpusLayoutError asking for language.txt. There are no splits.

Rows: id word-alignments/AUDIO_PATH_UNDER_ROOT, task transcribe, audio_lang/text_lang from the language, instruction
wo_itn (aligner transcripts are spoken form), "timestamps": true, "words": [{word, start, end}] (seconds within the
clip; every word after the first carries a leading space, except in Chinese and Japanese), "text" the words joined.

Skips (`where` = the file, FILE:LINE for a ctm line): an audio file without an alignment, an alignment without its
audio, several audio or alignment files of one stem, an alignment that cannot be read (not UTF-8, bad JSON, a
TextGrid without one word tier, a malformed ctm line, a ctm of several utterances, a time that is not a number), a
language without a Qwen-Audio tag, no words, words out of order or overlapping (a word starting before the previous
word's end, or ending before its own start), an audio header soundfile cannot read, a clip longer than 30 s (the
encoder and the timestamp tokens stop there), a word ending after the clip's duration (read with soundfile.info:
this is the one builder that reads audio headers).
"""
from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import soundfile

from data_prep.corpora.common import Corpus, CorpusLayoutError, Row, Skip, no_language_tag, speech_language
from data_prep.corpora.long_form import encoder_limit_problem

CORPUS = "word-alignments"
LANGUAGE_FILE = "language.txt"
AUDIO_SUFFIXES = (".wav", ".flac")
NOT_WORDS = frozenset({"", "sil", "sp", "<eps>", "<unk>"})
UNSPACED_LANGUAGES = ("zh", "ja")
CTM_FORMAT = "expected UTTERANCE CHANNEL START DURATION WORD [CONFIDENCE]"

TEXTGRID_TIER = re.compile(r"^[ \t]*item \[\d+\]:[ \t]*$", re.MULTILINE)
TEXTGRID_NAME = re.compile(r'^\s*name = "((?:[^"]|"")*)"', re.MULTILINE)
TEXTGRID_INTERVAL = re.compile(r'intervals \[\d+\]:\s*xmin = (\S+)\s*xmax = (\S+)\s*text = "((?:[^"]|"")*)"')


class TimedWord(NamedTuple):
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Alignment:
    words: list[TimedWord]  # in file order, silence included
    language: str | None  # the file's own language code (JSON only)


class UnreadableAlignment(ValueError):
    """An alignment file that cannot be read: where (the file, or FILE:LINE) and why."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


def seconds(value: object, where: str) -> float:
    """A time as the alignment writes it (a number, or its text) in seconds."""
    try:
        time = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        time = math.nan
    if not math.isfinite(time):
        raise UnreadableAlignment(where, f"time {value!r} is not a number")
    return time


def read_text(path: Path) -> str:
    """A text file as Praat or an aligner writes it: UTF-8, or UTF-16 with its byte-order mark."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableAlignment(str(path), f"not UTF-8 or UTF-16 text (byte {error.start})") from None


def read_textgrid(path: Path) -> Alignment:
    """The intervals of the long-format TextGrid's word tier."""
    interval_tiers = {}
    for block in TEXTGRID_TIER.split(read_text(path))[1:]:
        name = TEXTGRID_NAME.search(block)
        if name and 'class = "IntervalTier"' in block:
            interval_tiers[name[1].replace('""', '"')] = block
    word_tiers = [name for name in interval_tiers if name == "words" or name.endswith(" - words")]
    if len(word_tiers) != 1:
        found = f"tiers: {', '.join(interval_tiers)}" if interval_tiers else "no tiers of the long text format"
        raise UnreadableAlignment(str(path), f"{len(word_tiers)} word tiers ({found}); expected one interval tier "
                                             "named 'words', in the long TextGrid format MFA writes")
    intervals = TEXTGRID_INTERVAL.findall(interval_tiers[word_tiers[0]])
    return Alignment([TimedWord(text.replace('""', '"').strip(), seconds(xmin, str(path)), seconds(xmax, str(path)))
                      for xmin, xmax, text in intervals], None)


def read_ctm(path: Path) -> Alignment:
    """The words of a one-utterance CTM file (end = start + duration, rounded to the microsecond)."""
    words, utterances = [], set()
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        fields, where = line.split(), f"{path}:{line_number}"
        if not fields or fields[0].startswith(";;"):
            continue
        if len(fields) not in (5, 6):
            raise UnreadableAlignment(where, f"{len(fields)} fields; {CTM_FORMAT}")
        start, duration = seconds(fields[2], where), seconds(fields[3], where)
        utterances.add(fields[0])
        words.append(TimedWord(fields[4], start, round(start + duration, 6)))
    if len(utterances) > 1:
        raise UnreadableAlignment(str(path), f"several utterances ({', '.join(sorted(utterances))}); "
                                             "expected one clip per ctm file")
    return Alignment(words, None)


def read_json_alignment(path: Path) -> Alignment:
    """{"language", "words": [{word, start, end}]} or the bare word list."""
    try:
        document = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise UnreadableAlignment(str(path), f"not valid JSON ({error.msg} at line {error.lineno})") from None
    language = None
    if isinstance(document, dict):
        language, document = document.get("language") or None, document.get("words")
        if language is not None and not isinstance(language, str):
            raise UnreadableAlignment(str(path), f"\"language\" is {language!r}, not a language code")
    if not isinstance(document, list):
        raise UnreadableAlignment(str(path), 'expected {"language", "words": [{word, start, end}, ...]} or a list '
                                             "of {word, start, end}")
    words = []
    for index, word in enumerate(document):
        if not isinstance(word, dict) or not isinstance(word.get("word"), str):
            raise UnreadableAlignment(str(path), f"words[{index}] is {word!r}, not {{word, start, end}}")
        words.append(TimedWord(word["word"].strip(), seconds(word.get("start"), str(path)),
                               seconds(word.get("end"), str(path))))
    return Alignment(words, language)


ALIGNMENT_READERS: dict[str, Callable[[Path], Alignment]] = {
    ".textgrid": read_textgrid, ".ctm": read_ctm, ".json": read_json_alignment}


def clip_files(root: Path) -> dict[Path, tuple[list[Path], list[Path]]]:
    """Path without suffix -> (its audio files, its alignment files), for every such file under ROOT."""
    clips: dict[Path, tuple[list[Path], list[Path]]] = defaultdict(lambda: ([], []))
    for path in sorted(root.rglob("*")):
        suffix = path.suffix.lower()
        if path.is_file() and (suffix in AUDIO_SUFFIXES or suffix in ALIGNMENT_READERS):
            audios, alignments = clips[path.with_suffix("")]
            (alignments if suffix in ALIGNMENT_READERS else audios).append(path)
    return clips


def read_language_file(root: Path) -> str | None:
    """The code in ROOT/language.txt, or None without that file."""
    path = root / LANGUAGE_FILE
    if not path.is_file():
        return None
    code = path.read_text(encoding="utf-8").strip()
    if not code:
        raise CorpusLayoutError(f"{path}: empty; write the clips' language code in it (e.g. en)")
    return code


def word_order_problem(words: list[TimedWord]) -> str | None:
    """Why the words cannot be a timestamp target (none, out of order, overlapping), or None."""
    if not words:
        return "no words (only silence)"
    previous_end, previous_text = 0.0, None
    for word in words:
        if word.end < word.start:
            return f"word {word.text!r} ends ({word.end} s) before it starts ({word.start} s)"
        if word.start < previous_end:
            before = f"before {previous_text!r} ends ({previous_end} s)" if previous_text else "before 0 s"
            return f"word {word.text!r} starts at {word.start} s, {before}: words out of order or overlapping"
        previous_end, previous_text = word.end, word.text
    return None


def timed_words(words: list[TimedWord], language: str) -> list[dict]:
    """Manifest words: every word after the first with its leading space, unless the language writes none."""
    space = "" if language in UNSPACED_LANGUAGES else " "
    return [{"word": (space if index else "") + word.text, "start": word.start, "end": word.end}
            for index, word in enumerate(words)]


def clip_duration_skip(audio: Path, alignment_path: Path, last_word: TimedWord) -> Skip | None:
    """Why the clip cannot hold these words (its header unreadable, too long, ending before the last word), or None."""
    try:
        duration = soundfile.info(str(audio)).duration
    except RuntimeError as error:
        return Skip(str(audio), f"audio header unreadable ({error})")
    too_long = encoder_limit_problem(duration, "clip")
    if too_long:
        return Skip(str(audio), too_long)
    if last_word.end > duration:
        return Skip(str(alignment_path), f"word {last_word.text!r} ends at {last_word.end} s, after the clip's "
                                         f"{duration} s")
    return None


def clip_row(root: Path, audio: Path, alignment_path: Path, default_language: str | None) -> Row | Skip:
    try:
        alignment = ALIGNMENT_READERS[alignment_path.suffix.lower()](alignment_path)
    except UnreadableAlignment as error:
        return Skip(error.where, error.reason)
    code = alignment.language or default_language
    if code is None:
        raise CorpusLayoutError(f"{root / LANGUAGE_FILE}: missing, and {alignment_path} names no language; write "
                                "the clips' language code (e.g. en) in language.txt")
    languages = speech_language(code)
    if languages is None:
        return Skip(str(alignment_path), no_language_tag(code))
    words = [word for word in alignment.words if word.text.lower() not in NOT_WORDS]
    problem = word_order_problem(words)
    if problem:
        return Skip(str(alignment_path), problem)
    beyond_clip = clip_duration_skip(audio, alignment_path, words[-1])
    if beyond_clip:
        return beyond_clip
    audio_lang, text_lang = languages
    row_words = timed_words(words, audio_lang)
    return {"id": f"{CORPUS}/{audio.relative_to(root).as_posix()}", "task": "transcribe",
            "audio": str(audio.absolute()), "audio_lang": audio_lang, "text_lang": text_lang, "instruction": "wo_itn",
            "timestamps": True, "words": row_words, "text": "".join(word["word"] for word in row_words)}


def word_alignment_rows(root: Path, _split: str | None) -> Iterator[Row | Skip]:
    if not root.is_dir():
        raise CorpusLayoutError(f"{root}: not a folder; --root must hold the audio clips and their alignments")
    clips = clip_files(root)
    if not clips:
        raise CorpusLayoutError(f"{root}: no audio (*.wav, *.flac) or alignment (*.TextGrid, *.ctm, *.json) files")
    default_language = read_language_file(root)
    for stem, (audios, alignments) in sorted(clips.items()):
        if len(audios) > 1 or len(alignments) > 1:
            names = ", ".join(path.name for path in audios + alignments)
            yield Skip(str(stem), f"several files for one clip ({names}); keep one audio and one alignment")
        elif not alignments:
            yield Skip(str(audios[0]), f"no alignment file ({stem.name}.TextGrid, .ctm or .json) beside it")
        elif not audios:
            yield Skip(str(alignments[0]), f"no audio file ({stem.name}.wav or .flac) beside it")
        else:
            yield clip_row(root, audios[0], alignments[0], default_language)


CORPORA = {CORPUS: Corpus("audio + forced alignments (MFA TextGrid, ctm, json): transcription with word timestamps",
                          (), word_alignment_rows)}
