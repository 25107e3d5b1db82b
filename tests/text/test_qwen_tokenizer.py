"""QwenTokenizer on the real released ranks, checked against known ids and an independent BPE implementation."""
import random
import unicodedata
from pathlib import Path

import pytest
from transformers.convert_slow_tokenizer import TikTokenConverter

from megatron_qwen_audio.text.special_tokens import ALIASES, special_tokens
from megatron_qwen_audio.text.tokenizer import QwenTokenizer, TextTokenizer

SPECIAL_RANGE_START = 151_643
# Qwen's pre-tokenizer as published with the released tokenizer (single digits, unlike GPT-4's \p{N}{1,3}).
RELEASED_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def test_known_ids_and_sizes(qwen_tokenizer: QwenTokenizer):
    assert isinstance(qwen_tokenizer, TextTokenizer)
    assert qwen_tokenizer.encode("Hello world!") == [9707, 1879, 0]
    assert qwen_tokenizer.encode("2024") == [17, 15, 17, 19]  # digits one by one
    assert qwen_tokenizer.vocab_size == 155_165
    assert qwen_tokenizer.padded_vocab_size == 155_947
    assert qwen_tokenizer.eod_id == qwen_tokenizer.pad_id == 151_643


def test_every_special_token_maps_both_ways(qwen_tokenizer: QwenTokenizer):
    for name, token_id in special_tokens().items():
        assert qwen_tokenizer.token_id(name) == token_id
        assert qwen_tokenizer.decode([token_id]) == name


def test_special_spellings_in_plain_text_stay_text(qwen_tokenizer: QwenTokenizer):
    text = " ".join([*special_tokens(), *ALIASES])
    ids = qwen_tokenizer.encode(text)
    assert max(ids) < SPECIAL_RANGE_START
    assert qwen_tokenizer.decode(ids) == text


def test_encode_with_special_reads_every_special_and_alias(qwen_tokenizer: QwenTokenizer):
    table = special_tokens()
    assert qwen_tokenizer.encode_with_special("".join(table)) == list(table.values())
    assert qwen_tokenizer.encode_with_special("<|startoftranscripts|><|analysis|><|question-answer|>") == [
        151_852, 151_853, 155_152]
    assert qwen_tokenizer.encode_with_special("Hello world!<|endoftext|>") == [9707, 1879, 0, 151_643]


def test_aliases_share_the_released_id(qwen_tokenizer: QwenTokenizer):
    assert qwen_tokenizer.token_id("<|startoftranscripts|>") == qwen_tokenizer.token_id("<|startoftranscript|>")
    assert qwen_tokenizer.token_id("<|analysis|>") == qwen_tokenizer.token_id("<|startofanalysis|>")
    assert qwen_tokenizer.token_id("<|question-answer|>") == qwen_tokenizer.token_id("<|question|>")


def test_unknown_special_name_is_a_clear_key_error(qwen_tokenizer: QwenTokenizer):
    with pytest.raises(KeyError, match=r"unknown special token '<\|pt\|>'.*qwen_audio_special_tokens\.json"):
        qwen_tokenizer.token_id("<|pt|>")


def _random_text(rng: random.Random, length: int) -> str:
    """Text mixing scripts, digits, punctuation, emoji, combining marks and whitespace runs."""
    ranges = [(0x20, 0x7E), (0xA0, 0x17F), (0x300, 0x36F), (0x391, 0x3C9), (0x410, 0x44F), (0x4E00, 0x9FFF),
              (0x3040, 0x30FF), (0xAC00, 0xD7A3), (0x1F600, 0x1F64F)]
    pieces = []
    for _ in range(length):
        if rng.random() < 0.1:
            pieces.append(rng.choice([" ", "  ", "\n", "\n\n", "\t", " \n ", "'s", "'LL", "123", "3.14"]))
        else:
            low, high = rng.choice(ranges)
            pieces.append(chr(rng.randint(low, high)))
    return "".join(pieces)


def test_ordinary_text_matches_an_independent_bpe(qwen_tokenizer: QwenTokenizer, qwen_tokenizer_file: Path,
                                                  monkeypatch):
    """HF `tokenizers` BPE built from the same ranks by transformers' converter must give the same ids."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # the converter reads through tiktoken; keep it from caching a copy
    reference = TikTokenConverter(vocab_file=str(qwen_tokenizer_file), pattern=RELEASED_PATTERN).converted()
    rng = random.Random(0)
    texts = ["Hello world!", "The quick brown fox's 12,345 jumps;\n\n  indented\tcode()  ",
             "语音识别和音频理解。", "Grüße aus München — ¿qué tal? 東京 서울 🙂"]
    texts += [_random_text(rng, rng.randint(1, 200)) for _ in range(300)]
    for text in texts:
        text = unicodedata.normalize("NFC", text)
        assert qwen_tokenizer.encode(text) == reference.encode(text).ids, text
        assert qwen_tokenizer.decode(qwen_tokenizer.encode(text)) == text


def test_text_is_nfc_normalised_like_the_released_tokenizer(qwen_tokenizer: QwenTokenizer):
    assert qwen_tokenizer.encode("Cafe\u0301") == qwen_tokenizer.encode("Caf\u00e9")


def test_fingerprint_identifies_the_ranks(qwen_tokenizer: QwenTokenizer, qwen_tokenizer_file: Path):
    data = qwen_tokenizer_file.read_bytes()
    assert QwenTokenizer(data).fingerprint == qwen_tokenizer.fingerprint
    assert len(qwen_tokenizer.fingerprint) == 64
    lines = data.splitlines(keepends=True)
    (token_a, rank_a), (token_b, rank_b) = lines[0].split(), lines[1].split()
    swapped = token_b + b" " + rank_a + b"\n" + token_a + b" " + rank_b + b"\n" + b"".join(lines[2:])
    assert QwenTokenizer(swapped).fingerprint != qwen_tokenizer.fingerprint
