"""Qwen-Audio's tokenizer: Qwen-7B byte-level BPE on tiktoken plus the 3,522 released Qwen-Audio special tokens.

Ids are identical to the released tokenizer (ranks 0..151642 from `qwen.tiktoken`, specials 151643..155164), so
sequences built here feed released checkpoints unchanged. `TextTokenizer` is the interface the tag builder and the
data path use; the SentencePiece backend implements the same one for other decoders.
"""
from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import tiktoken

from megatron_qwen_audio.text.fetch import resolve_tokenizer_file
from megatron_qwen_audio.text.special_tokens import (
    ENDOFTEXT,
    base_vocab_size,
    canonical_name,
    encode_with_special_tokens,
    padded_vocab_size,
    special_tokens,
)

# Qwen's pre-tokenizer: contractions, letter runs with one leading non-letter, single digits, punctuation runs,
# newlines, spaces (the released tokenization_qwen.PAT_STR).
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


@runtime_checkable
class TextTokenizer(Protocol):
    """What the data path needs from a tokenizer, whichever decoder vocabulary is behind it."""

    def encode(self, text: str) -> list[int]:
        """Ordinary text: special-token spellings in it stay text, never control tokens."""

    def encode_with_special(self, text: str) -> list[int]:
        """Text with special-token spellings (and their aliases) read as the special tokens."""

    def decode(self, ids: Sequence[int]) -> str:
        """Ids back to text; special tokens come back as their spellings."""

    def token_id(self, name: str) -> int:
        """Id of a special token by its spelling (aliases accepted); KeyError for an unknown name."""

    @property
    def eod_id(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def padded_vocab_size(self) -> int: ...

    @property
    def fingerprint(self) -> str:
        """Identifies the exact id mapping, so shards built with another tokenizer can be refused."""


def special_table_bytes(table: Mapping[str, int]) -> bytes:
    """A canonical byte form of a special-token table (name/id pairs in id order) for fingerprints."""
    return json.dumps(sorted(table.items(), key=lambda item: item[1]), ensure_ascii=False).encode("utf-8")


class SpecialTokenIds:
    """Special-token lookups shared by the backends: `_special` maps every special token's name to its id."""

    _special: dict[str, int]

    def token_id(self, name: str) -> int:
        try:
            return self._special[canonical_name(name)]
        except KeyError:
            raise KeyError(
                f"unknown special token {name!r}: special tokens are spelled like '<|en|>' or '<|startoftranscript|>' "
                f"(the full list is megatron_qwen_audio/text/qwen_audio_special_tokens.json)"
            ) from None

    @property
    def eod_id(self) -> int:
        return self._special[ENDOFTEXT]


def parse_tiktoken_ranks(data: bytes) -> dict[bytes, int]:
    """`base64-token rank` lines -> {token bytes: rank}.

    Parsed from the already verified bytes instead of tiktoken.load.load_tiktoken_bpe, which would copy the file into
    a temporary cache folder of its own.
    """
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


class QwenTokenizer(SpecialTokenIds):
    """The released Qwen-Audio tokenizer on tiktoken (see the module docstring)."""

    def __init__(self, ranks_data: bytes):
        ranks = parse_tiktoken_ranks(ranks_data)
        assert len(ranks) == base_vocab_size(), f"{len(ranks)} ranks, expected {base_vocab_size()}"
        self._special = dict(special_tokens())
        self._encoding = tiktoken.Encoding(
            "qwen_audio", pat_str=QWEN_PATTERN, mergeable_ranks=ranks, special_tokens=self._special
        )
        fingerprint = hashlib.sha256(ranks_data)
        fingerprint.update(special_table_bytes(self._special))
        self._fingerprint = fingerprint.hexdigest()

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> "QwenTokenizer":
        """Load the verified `qwen.tiktoken` found by resolve_tokenizer_file(path)."""
        return cls(resolve_tokenizer_file(path).read_bytes())

    def encode(self, text: str) -> list[int]:
        # NFC first, as the released tokenizer does, so composed and decomposed accents give the same ids.
        return self._encoding.encode_ordinary(unicodedata.normalize("NFC", text))

    def encode_with_special(self, text: str) -> list[int]:
        return encode_with_special_tokens(text, self.encode, self.token_id)

    def decode(self, ids: Sequence[int]) -> str:
        return self._encoding.decode([int(i) for i in ids], errors="replace")

    @property
    def pad_id(self) -> int:
        """The released setup pads with the end-of-document token; padded positions are masked out of the loss."""
        return self.eod_id

    @property
    def vocab_size(self) -> int:
        return self._encoding.n_vocab

    @property
    def padded_vocab_size(self) -> int:
        return padded_vocab_size()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint
