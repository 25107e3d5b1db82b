"""The released Qwen-Audio special-token table, the paper's alternative spellings, and tag helpers.

Released checkpoints only load if every special token keeps its released id, so the table is shipped verbatim as
package data (`qwen_audio_special_tokens.json`) and never generated. The paper spells three tags differently from the
released code; those spellings are accepted as aliases of the released tokens (same id), so no released id moves and
no new row is needed in the embedding.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from importlib import resources
from types import MappingProxyType

TABLE_FILE = "qwen_audio_special_tokens.json"

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
AUDIO_START = "<audio>"
AUDIO_END = "</audio>"
AUDIO_PAD = "[[[AUDIO:modality]]]"  # one per audio embedding; the model overwrites the whole <audio>..</audio> span

# Paper spelling -> released spelling.
ALIASES: Mapping[str, str] = MappingProxyType({
    "<|startoftranscripts|>": "<|startoftranscript|>",
    "<|analysis|>": "<|startofanalysis|>",
    "<|question-answer|>": "<|question|>",
})

# Language tags of the audio (the spoken language; `unknown` for non-speech) and of the text (adds traditional Chinese).
AUDIO_LANGUAGES = ("en", "zh", "de", "es", "ko", "fr", "ja", "it", "unknown")
TEXT_LANGUAGES = AUDIO_LANGUAGES + ("zh_tr",)

# Output-instruction tags: the last tag of the hierarchy, choosing the style of the output. Other tokens of the same
# id range (`<|pitch|>`, `<|midi_pitch_60|>`, `<|question|>`, ...) mark fields inside outputs or prompts instead.
OUTPUT_INSTRUCTIONS = (
    "caption_audiocaps", "caption_clotho", "audioset_ontology", "caption_plain", "itn", "wo_itn",
    "named_entity_recognition", "audio_grounding", "emotion_recognition", "music_description", "note_analysis",
    "speaker_meta", "song_meta", "scene", "event", "vocal_classification", "speech_understanding", "speech_edit",
)

MAX_TIMESTAMP_CENTISECONDS = 3000  # `<|0.00|>`, `<|0.01|>`, ..., `<|30.00|>`


@lru_cache(maxsize=1)
def _load_table() -> dict:
    with resources.files(__package__).joinpath(TABLE_FILE).open("r", encoding="utf-8") as handle:
        return json.load(handle)


def special_tokens() -> Mapping[str, int]:
    """Every released special token and its id, in id order (151643 `<|endoftext|>` .. 155164 `</audio>`)."""
    return MappingProxyType(_load_table()["special_tokens"])


def base_vocab_size() -> int:
    """Ids below this are the Qwen byte-level BPE ranks; specials start here."""
    return _load_table()["base_vocab_size"]


def padded_vocab_size() -> int:
    """Rows of the released Qwen-Audio embedding and LM head (larger than the table so shapes divide evenly)."""
    return _load_table()["padded_vocab_size"]


def canonical_name(name: str) -> str:
    """The released spelling of `name` (itself unless it is one of the paper's aliases)."""
    return ALIASES.get(name, name)


def _tag(code: str, allowed: tuple[str, ...], what: str) -> str:
    if code not in allowed:
        raise ValueError(f"unknown {what} {code!r}; use one of {', '.join(allowed)}")
    return f"<|{code}|>"


def audio_language_token(code: str) -> str:
    """`en` -> `<|en|>`; the audio-language tag (`unknown` for non-speech audio)."""
    return _tag(code, AUDIO_LANGUAGES, "audio language")


def text_language_token(code: str) -> str:
    """`zh_tr` -> `<|zh_tr|>`; the language of the text the model writes."""
    return _tag(code, TEXT_LANGUAGES, "text language")


def output_instruction_token(name: str) -> str:
    """`itn` -> `<|itn|>`; the output-instruction tag that ends the prompt hierarchy."""
    return _tag(name, OUTPUT_INSTRUCTIONS, "output instruction")


def timestamp_token(seconds: float) -> str:
    """The timestamp tag nearest to `seconds` (0.01 s steps, 0.00..30.00 s), e.g. 12.3449 -> `<|12.34|>`.

    Halves round up (12.345 -> `<|12.35|>`) as far as the float allows; a time outside the table is an error rather
    than a clamp, because a clamped stamp would teach the model a wrong time.
    """
    centiseconds = math.floor(seconds * 100 + 0.5) if math.isfinite(seconds) else -1
    if not 0 <= centiseconds <= MAX_TIMESTAMP_CENTISECONDS:
        raise ValueError(f"time {seconds!r} s is outside the timestamp tokens <|0.00|>..<|30.00|>")
    return f"<|{centiseconds // 100}.{centiseconds % 100:02d}|>"


@lru_cache(maxsize=1)
def _special_pattern() -> re.Pattern[str]:
    # Longest first, so a spelling that extends another (an alias) wins over its prefix.
    names = sorted([*special_tokens(), *ALIASES], key=len, reverse=True)
    return re.compile("|".join(re.escape(name) for name in names))


def split_on_special_tokens(text: str) -> Iterator[tuple[str, bool]]:
    """Yield (piece, is_special) covering `text` in order: special spellings (aliases too) and the text between."""
    position = 0
    for match in _special_pattern().finditer(text):
        if match.start() > position:
            yield text[position:match.start()], False
        yield match.group(), True
        position = match.end()
    if position < len(text):
        yield text[position:], False


def encode_with_special_tokens(
    text: str, encode_text: Callable[[str], list[int]], token_id: Callable[[str], int]
) -> list[int]:
    """Encode `text` reading special-token spellings as control tokens; the text between goes through `encode_text`.

    Shared by every backend so both read the same spellings the same way.
    """
    ids: list[int] = []
    for piece, is_special in split_on_special_tokens(text):
        if is_special:
            ids.append(token_id(piece))
        else:
            ids.extend(encode_text(piece))
    return ids
