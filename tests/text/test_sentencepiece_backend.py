"""SentencePieceTokenizer on a tiny model trained here: model ids kept, Qwen-Audio specials appended in table order."""
import random
from pathlib import Path

import pytest
import sentencepiece

from megatron_qwen_audio.text.sentencepiece_backend import SentencePieceTokenizer
from megatron_qwen_audio.text.special_tokens import special_tokens
from megatron_qwen_audio.text.tags import build_sequence
from megatron_qwen_audio.text.tokenizer import TextTokenizer

WORDS = "the quick brown fox jumps over a lazy dog while audio models listen to speech and music".split()


def _train(folder: Path, seed: int) -> Path:
    """A ~300-piece unigram model with `<|en|>` as a user-defined symbol and `<|endoftext|>` as a control symbol."""
    rng = random.Random(seed)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(400)) + "\n")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tiny"), vocab_size=300, hard_vocab_limit=False,
        user_defined_symbols=["<|en|>"], control_symbols=["<|endoftext|>"], byte_fallback=True,
        num_threads=1, minloglevel=2,
    )
    return folder / "tiny.model"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("sentencepiece"), seed=1)


@pytest.fixture(scope="module")
def processor(model_file) -> sentencepiece.SentencePieceProcessor:
    return sentencepiece.SentencePieceProcessor(model_file=str(model_file))


@pytest.fixture(scope="module")
def tokenizer(model_file) -> SentencePieceTokenizer:
    return SentencePieceTokenizer(model_file)


def test_model_pieces_keep_their_ids_and_the_rest_are_appended_in_table_order(tokenizer, processor):
    assert isinstance(tokenizer, TextTokenizer)
    size = processor.get_piece_size()
    owned = {"<|en|>": processor.piece_to_id("<|en|>"), "<|endoftext|>": processor.piece_to_id("<|endoftext|>")}
    assert all(token_id < size for token_id in owned.values())
    assert {name: tokenizer.token_id(name) for name in owned} == owned
    appended = [tokenizer.token_id(name) for name in special_tokens() if name not in owned]
    assert appended == list(range(size, size + 3520))
    assert tokenizer.token_id("</audio>") == size + 3519
    assert tokenizer.vocab_size == size + 3520
    assert tokenizer.padded_vocab_size % 128 == 0
    assert tokenizer.vocab_size <= tokenizer.padded_vocab_size < tokenizer.vocab_size + 128
    assert tokenizer.eod_id == tokenizer.pad_id == owned["<|endoftext|>"]  # the model has no pad piece


def test_every_special_token_maps_both_ways(tokenizer):
    for name in special_tokens():
        assert tokenizer.decode([tokenizer.token_id(name)]) == name
    assert tokenizer.token_id("<|startoftranscripts|>") == tokenizer.token_id("<|startoftranscript|>")
    with pytest.raises(KeyError, match="unknown special token"):
        tokenizer.token_id("<|pt|>")


def test_ordinary_text_is_the_models_own_encoding(tokenizer, processor):
    text = "the lazy dog listens to music"
    assert tokenizer.encode(text) == processor.encode(text)
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_special_spellings_in_plain_text_stay_text(tokenizer, processor):
    text = "say <|en|> and <|endoftext|> and <|im_start|>"
    special_ids = set(tokenizer.token_id(name) for name in special_tokens())
    assert processor.piece_to_id("<|en|>") in processor.encode(text)  # the raw model would read it as a symbol
    ids = tokenizer.encode(text)
    assert not special_ids & set(ids)
    assert tokenizer.decode(ids) == text


def test_encode_with_special(tokenizer, processor):
    ids = tokenizer.encode_with_special("hello<|en|>world<|startoftranscripts|>")
    assert ids == (processor.encode("hello") + [tokenizer.token_id("<|en|>")] + processor.encode("world")
                   + [tokenizer.token_id("<|startoftranscript|>")])
    assert tokenizer.decode(ids) == "hello<|en|>world<|startoftranscript|>"


def test_fingerprint_follows_the_model_file(model_file, tokenizer, tmp_path):
    assert SentencePieceTokenizer(model_file).fingerprint == tokenizer.fingerprint
    other = SentencePieceTokenizer(_train(tmp_path, seed=2))
    assert other.fingerprint != tokenizer.fingerprint


def test_tag_builder_works_on_this_backend(tokenizer, assert_sequence):
    sample = {"task": "transcribe", "audio_lang": "en", "text_lang": "en", "text": "the quick fox"}
    sequence = build_sequence(sample, [300], [3.0], tokenizer)
    assert_sequence(sequence, tokenizer, [
        ("<audio>" + "[[[AUDIO:modality]]]" * 75 + "</audio><|startoftranscript|><|en|><|transcribe|><|en|>"
         "<|notimestamps|><|wo_itn|>", False),
        ("the quick fox<|endoftext|>", True),
    ])
