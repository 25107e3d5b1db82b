"""Shared fixtures: real recorded speech (Debian's Asterisk prompts) and the released Qwen tokenizer file, each fetched
once per machine with the project's own fetchers and cached."""
from pathlib import Path

import pytest

from data_prep.asterisk import SOUNDS_DIR, wav_package
from data_prep.debian_packages import fetch_debian_packages
from megatron_qwen_audio.text.fetch import default_cache_dir, fetch_tokenizer_file
from megatron_qwen_audio.text.tokenizer import QwenTokenizer


@pytest.fixture(scope="session")
def debian_cache_dir() -> Path:
    """Where Debian packages are downloaded and unpacked ($MQA_CACHE_DIR/debian), shared with mqa-prepare-asterisk."""
    return default_cache_dir() / "debian"


@pytest.fixture(scope="session")
def real_speech_paths(debian_cache_dir) -> list[Path]:
    """A few real English speech recordings (8 kHz PCM WAV), sorted by name."""
    root = fetch_debian_packages([wav_package("en")], debian_cache_dir)
    paths = sorted((root / SOUNDS_DIR).rglob("*.wav"))
    return [p for p in paths if p.stat().st_size > 40000][:8]


@pytest.fixture(scope="session")
def qwen_tokenizer_file() -> Path:
    """The verified ranks file in the cache folder ($MQA_CACHE_DIR or ~/.cache/megatron_qwen_audio)."""
    return fetch_tokenizer_file()


@pytest.fixture(scope="session")
def qwen_tokenizer(qwen_tokenizer_file: Path) -> QwenTokenizer:
    return QwenTokenizer.from_file(qwen_tokenizer_file)
