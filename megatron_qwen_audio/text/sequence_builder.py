"""Assembling one training sequence: token ids plus the labels that say which positions are trained.

Every task format (tags.py, chatml.py) appends prompt pieces, audio spans and target pieces here in order, so the
rule "only target positions enter the loss" lives in one place.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from megatron_qwen_audio.audio.lengths import audio_token_count
from megatron_qwen_audio.data.shard_format import IGNORE_INDEX
from megatron_qwen_audio.text.special_tokens import AUDIO_END, AUDIO_PAD, AUDIO_START
from megatron_qwen_audio.text.tokenizer import TextTokenizer


class TagFormatError(ValueError):
    """A manifest row whose content cannot become a training sequence; the message starts with the field at fault."""


@dataclass(frozen=True)
class TaggedSequence:
    """`labels[i]` is `input_ids[i]` where position i is trained, IGNORE_INDEX (-100) elsewhere.

    Labels are not shifted: the model (or loss) predicts labels[i + 1] from position i.
    """

    input_ids: np.ndarray  # int32 [length]
    labels: np.ndarray  # int32 [length]


class SequenceBuilder:
    """Appends prompt and target pieces of one sample and produces its TaggedSequence."""

    def __init__(self, tokenizer: TextTokenizer):
        self.tokenizer = tokenizer
        self._ids: list[int] = []
        self._trained: list[bool] = []

    def _append(self, ids: Sequence[int], trained: bool) -> None:
        self._ids.extend(ids)
        self._trained.extend([trained] * len(ids))

    def prompt(self, ids: Sequence[int]) -> None:
        self._append(ids, trained=False)

    def target(self, ids: Sequence[int]) -> None:
        self._append(ids, trained=True)

    def prompt_tokens(self, *names: str) -> None:
        self.prompt([self.tokenizer.token_id(name) for name in names])

    def target_tokens(self, *names: str) -> None:
        self.target([self.tokenizer.token_id(name) for name in names])

    def audio(self, mel_frames: int) -> None:
        """`<audio>` + one pad per audio embedding + `</audio>`: the span the model overwrites with encoder output."""
        pad = self.tokenizer.token_id(AUDIO_PAD)
        self.prompt_tokens(AUDIO_START)
        self.prompt([pad] * audio_token_count(mel_frames))
        self.prompt_tokens(AUDIO_END)

    def build(self) -> TaggedSequence:
        input_ids = np.asarray(self._ids, dtype=np.int32)
        labels = np.where(np.asarray(self._trained, dtype=bool), input_ids, IGNORE_INDEX).astype(np.int32)
        return TaggedSequence(input_ids=input_ids, labels=labels)


def optional_text(mapping: Mapping, key: str, where: str | None = None) -> str | None:
    """The string in `mapping[key]`, None when absent or null; any other type is an error naming the field.

    `where` is the field's full name for messages (e.g. `words[3].word`); default `key`.
    """
    value = mapping.get(key)
    if value is not None and not isinstance(value, str):
        raise TagFormatError(f"{where or key}: expected a string, got {type(value).__name__}")
    return value


def required_text(mapping: Mapping, key: str, purpose: str, where: str | None = None) -> str:
    """A non-blank string from `mapping[key]`; `purpose` says in the error what the field is for."""
    value = optional_text(mapping, key, where)
    if value is None or not value.strip():
        raise TagFormatError(f"{where or key}: {'missing' if value is None else 'empty'}; give {purpose}")
    return value
