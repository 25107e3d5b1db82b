"""The TextTokenizer interface on a SentencePiece model, for decoders whose vocabulary is not Qwen's.

Id layout: every id of the SentencePiece model stays as it is. Each Qwen-Audio special token gets an id as follows,
walking the released table in its order (`<|endoftext|>`, `<|im_start|>`, ..., `<audio>`, `</audio>`):
- if the model already has a piece with exactly that spelling, the special token is that piece's id;
- otherwise it gets the next id after the model's vocabulary (piece_size, piece_size + 1, ...).
So a model without any of them gets the 3,522 specials at piece_size .. piece_size + 3521 in the released order, and
the decoder's embedding grows by that many rows (padded_vocab_size rounds the total up to a multiple of 128).

A special token the model defines as a user-defined symbol would be matched inside ordinary text by SentencePiece
itself; such pieces are turned into control symbols (same id) when the model is loaded, so `encode` keeps special
spellings in user text as text, as the Qwen backend does.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import sentencepiece
from sentencepiece import sentencepiece_model_pb2

from megatron_qwen_audio.text.special_tokens import (
    encode_with_special_tokens,
    special_tokens,
)
from megatron_qwen_audio.text.tokenizer import SpecialTokenIds, special_table_bytes

VOCAB_PADDING_MULTIPLE = 128  # common GPU-friendly multiple; tensor parallelism may pad further when it splits rows

_PieceType = sentencepiece_model_pb2.ModelProto.SentencePiece.Type


class SentencePieceTokenizer(SpecialTokenIds):
    """A SentencePiece model plus the Qwen-Audio special tokens (id layout in the module docstring)."""

    def __init__(self, model_file: str | Path):
        model_bytes = Path(model_file).read_bytes()
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(model_bytes)
        piece_ids = {piece.piece: index for index, piece in enumerate(proto.pieces)}

        self._special: dict[str, int] = {}
        next_id = len(proto.pieces)
        for name in special_tokens():
            if name in piece_ids:
                self._special[name] = piece_ids[name]
                if proto.pieces[piece_ids[name]].type == _PieceType.USER_DEFINED:
                    proto.pieces[piece_ids[name]].type = _PieceType.CONTROL
            else:
                self._special[name] = next_id
                next_id += 1
        self._name_of_id = {token_id: name for name, token_id in self._special.items()}
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=proto.SerializeToString())
        self._vocab_size = next_id

        fingerprint = hashlib.sha256(model_bytes)
        fingerprint.update(special_table_bytes(self._special))
        self._fingerprint = fingerprint.hexdigest()

    def encode(self, text: str) -> list[int]:
        return self._processor.encode(text)

    def encode_with_special(self, text: str) -> list[int]:
        return encode_with_special_tokens(text, self.encode, self.token_id)

    def decode(self, ids: Sequence[int]) -> str:
        """Runs of model ids go through SentencePiece; special ids (which it cannot know) become their spellings."""
        parts: list[str] = []
        run: list[int] = []
        for token_id in (int(i) for i in ids):
            if token_id in self._name_of_id:
                parts.append(self._processor.decode(run))
                parts.append(self._name_of_id[token_id])
                run = []
            else:
                run.append(token_id)
        parts.append(self._processor.decode(run))
        return "".join(parts)

    @property
    def pad_id(self) -> int:
        """The model's own pad piece when it has one, else the end-of-document token (as for Qwen)."""
        model_pad = self._processor.pad_id()
        return model_pad if model_pad >= 0 else self.eod_id

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def padded_vocab_size(self) -> int:
        return -(-self._vocab_size // VOCAB_PADDING_MULTIPLE) * VOCAB_PADDING_MULTIPLE

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the model file bytes and the resulting special-token ids."""
        return self._fingerprint
