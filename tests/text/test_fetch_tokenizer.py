"""mqa-fetch-tokenizer and resolve_tokenizer_file against the real released qwen.tiktoken."""
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from megatron_qwen_audio.text import fetch
from megatron_qwen_audio.text.fetch import (
    TokenizerChecksumError,
    fetch_tokenizer_file,
    main,
    resolve_tokenizer_file,
)


def test_fetched_file_is_the_released_ranks_file(qwen_tokenizer_file: Path):
    data = qwen_tokenizer_file.read_bytes()
    assert len(data) == 2_561_218
    assert data.count(b"\n") == 151_643
    assert hashlib.sha256(data).hexdigest() == "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"


def test_second_run_finds_the_verified_file_and_does_nothing(qwen_tokenizer_file: Path, monkeypatch, capsys):
    def no_download(*args, **kwargs):
        raise AssertionError("a verified cached file must not be downloaded again")

    monkeypatch.setattr(fetch.subprocess, "run", no_download)
    mtime = qwen_tokenizer_file.stat().st_mtime_ns
    assert main(["--cache-dir", str(qwen_tokenizer_file.parent)]) == 0
    assert capsys.readouterr().out.strip() == str(qwen_tokenizer_file)
    assert qwen_tokenizer_file.stat().st_mtime_ns == mtime


def _corrupt_copy(source: Path, target: Path) -> Path:
    data = bytearray(source.read_bytes())
    data[1000] ^= 0x01
    target.write_bytes(bytes(data))
    return target


def test_corrupt_cached_file_is_downloaded_again(qwen_tokenizer_file: Path, tmp_path: Path):
    corrupt = _corrupt_copy(qwen_tokenizer_file, tmp_path / "qwen.tiktoken")
    assert fetch_tokenizer_file(tmp_path) == corrupt
    assert corrupt.read_bytes() == qwen_tokenizer_file.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qwen.tiktoken"]  # no temporary file left behind


def test_wrong_checksum_is_an_error(qwen_tokenizer_file: Path, tmp_path: Path):
    corrupt = _corrupt_copy(qwen_tokenizer_file, tmp_path / "copy.tiktoken")
    with pytest.raises(TokenizerChecksumError, match=r"copy\.tiktoken: SHA-256 .*run mqa-fetch-tokenizer"):
        resolve_tokenizer_file(corrupt)


def test_resolve_order_explicit_then_environment_then_cache(qwen_tokenizer_file: Path, tmp_path: Path, monkeypatch):
    explicit = shutil.copy(qwen_tokenizer_file, tmp_path / "explicit.tiktoken")
    from_env = shutil.copy(qwen_tokenizer_file, tmp_path / "env.tiktoken")
    monkeypatch.setenv("MQA_CACHE_DIR", str(qwen_tokenizer_file.parent))
    monkeypatch.setenv("MQA_TOKENIZER_FILE", str(from_env))
    assert resolve_tokenizer_file(explicit) == Path(explicit)
    assert resolve_tokenizer_file() == Path(from_env)
    monkeypatch.delenv("MQA_TOKENIZER_FILE")
    assert resolve_tokenizer_file() == qwen_tokenizer_file


def test_missing_file_says_to_run_the_fetcher(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MQA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MQA_TOKENIZER_FILE", raising=False)
    with pytest.raises(FileNotFoundError) as error:
        resolve_tokenizer_file()
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "qwen.tiktoken") in message and "run mqa-fetch-tokenizer" in message


def test_failed_download_prints_one_line_with_the_manual_steps(tmp_path: Path, monkeypatch, capsys):
    empty_index = tmp_path / "simple"
    empty_index.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no configured indexes or wheel folders
    monkeypatch.setenv("PIP_INDEX_URL", empty_index.as_uri())
    for variable in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(variable, raising=False)
    cache = tmp_path / "cache"

    assert main(["--cache-dir", str(cache)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "pip download --no-deps dashscope==2.0.2" in lines[0]
    assert "dashscope/resources/qwen.tiktoken" in lines[0]
    assert not (cache / "qwen.tiktoken").exists()
