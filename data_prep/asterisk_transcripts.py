"""Parse the transcript lists of Debian's Asterisk prompt packages into the texts that are actually spoken.

The lists (`core-sounds-<lang>.txt`) are hand-written `name: text` lines with `;` comments, and they are not clean
training targets as they stand. What this module does with each oddity, and why:

* bracketed or parenthesised notes that make up the whole text (`[beep tone]`, `(1 second of silence)`) mark
  non-speech clips: skipped. A prompt that is non-speech in one language is non-speech in all of them (the Italian
  list calls a beep "un suono beep"), which `merge_non_speech` applies across languages;
* symbol glosses with no letters (`at [@]`, `space [ ]`) are dropped: only the word before them is spoken;
* other notes inside spoken text (`[temporales]`, `(note: does not say "2")`, `(data)`) leave it unclear which words
  were spoken: the prompt is skipped rather than trained on a guess;
* a `?` followed by a lower-case word (`sar? esattamente`) is an accented letter lost to a charset conversion in the
  Italian list: skipped, since the real word cannot be recovered;
* a name listed twice with different texts (the Spanish list gives `digits/0` both `cero` and `diez`): skipped;
* runs of whitespace become one space, so the same sentence always tokenizes the same way.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

EMPTY_TEXT = "empty text"
NON_SPEECH = "non-speech"
ANNOTATED_TEXT = "annotated text (a note inside the spoken text)"
DAMAGED_TEXT = "damaged text ('?' in place of a lost accented letter)"
CONFLICTING_TEXTS = "listed twice with different texts"
NOT_A_PROMPT_LINE = "not a 'name: text' line"

_WHOLLY_ANNOTATED = re.compile(r"[\[(][^\])]*[\])]")
_SYMBOL_GLOSS = re.compile(r"\[[^\w\]]*\]")
_ANNOTATION = re.compile(r"[\[\]()]")
_LOST_LETTER = re.compile(r"\?\s*[^\W\d_]")


@dataclass
class TranscriptList:
    """One language's list: usable texts by prompt name, non-speech names, and what was skipped and why."""

    texts: dict[str, str] = field(default_factory=dict)
    non_speech: set[str] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (prompt name or "line N", reason)

    def skip(self, name: str, reason: str) -> None:
        self.texts.pop(name, None)
        self.skipped.append((name, reason))


def parse_transcript_list(lines: Iterable[str]) -> TranscriptList:
    """Parse the lines of one `core-sounds-<lang>.txt` (decoded, byte-order mark removed)."""
    parsed = TranscriptList()
    texts_by_name: dict[str, list[str]] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        name, separator, text = line.partition(":")
        name = name.strip()
        if not separator or not name or " " in name:
            parsed.skipped.append((f"line {number}", NOT_A_PROMPT_LINE))
            continue
        texts_by_name.setdefault(name, []).append(" ".join(text.split()))
    for name, texts in texts_by_name.items():
        reason = CONFLICTING_TEXTS if len(set(texts)) > 1 else _unusable_reason(texts[0])
        if reason == NON_SPEECH:
            parsed.non_speech.add(name)
        if reason:
            parsed.skipped.append((name, reason))
        else:
            parsed.texts[name] = " ".join(_SYMBOL_GLOSS.sub(" ", texts[0]).split())
    return parsed


def _unusable_reason(text: str) -> str | None:
    if not text:
        return EMPTY_TEXT
    if _WHOLLY_ANNOTATED.fullmatch(text):
        return NON_SPEECH
    if _ANNOTATION.search(_SYMBOL_GLOSS.sub(" ", text)):
        return ANNOTATED_TEXT
    match = _LOST_LETTER.search(text)
    if match and match.group()[-1].islower():
        return DAMAGED_TEXT
    return None


def merge_non_speech(lists: Iterable[TranscriptList]) -> None:
    """Skip, in every list, the prompts that some list marks as non-speech (the clips are the same sounds)."""
    lists = list(lists)
    non_speech = set().union(*(transcripts.non_speech for transcripts in lists))
    for transcripts in lists:
        for name in sorted(non_speech & transcripts.texts.keys()):
            transcripts.skip(name, NON_SPEECH)
