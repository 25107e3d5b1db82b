"""Read a checkpoint's tensors one at a time, whatever files hold them.

Sources come as Hugging Face directories (`model.safetensors`, `model-0000N-of-0000M.safetensors` with
`model.safetensors.index.json`, or the older `pytorch_model*.bin`) or as one file (`.safetensors`, or a torch
`.pt`/`.bin`, e.g. an openai-whisper checkpoint `{"dims": ..., "model_state_dict": ...}`). A safetensors tensor is
read from its byte range when asked for, with plain reads rather than a memory map: pages of a mapped file stay
resident and counted in the process's memory until the kernel reclaims them, so reading a 17 GB checkpoint through a
map looks (and, under memory limits such as a cgroup's, acts) like holding it. Torch files are opened with
`mmap=True` where their format allows; converting an 8B model never holds the whole source in memory.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_TORCH_FILE_SUFFIXES = (".bin", ".pt", ".pth")


class ConversionError(ValueError):
    """A source or checkpoint that cannot be converted; the message names the file or tensor and what to do."""


@dataclass(frozen=True)
class _StoredTensor:
    """Where one tensor of a safetensors file lies: its dtype, shape and absolute byte range."""

    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int
    end: int

    def read(self) -> torch.Tensor:
        if self.end == self.start:
            return torch.empty(self.shape, dtype=self.dtype)
        data = bytearray(self.end - self.start)
        with open(self.file, "rb") as stream:
            stream.seek(self.start)
            if stream.readinto(data) != len(data):
                raise ConversionError(f"{self.file}: truncated (a tensor's bytes end past the file); download it again")
        return torch.frombuffer(data, dtype=self.dtype).reshape(self.shape)


def _safetensors_index(file: Path) -> dict[str, _StoredTensor]:
    """The tensors of a safetensors file from its header (8-byte little-endian length, then JSON)."""
    with open(file, "rb") as stream:
        try:
            (length,) = struct.unpack("<Q", stream.read(8))
            header = json.loads(stream.read(length))
        except (struct.error, ValueError, UnicodeDecodeError):
            raise ConversionError(f"{file}: not a safetensors file (unreadable header)") from None
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in _SAFETENSORS_DTYPES:
            raise ConversionError(f"{file}: tensor {name} has dtype {entry['dtype']}, which no model tensor uses")
        start, end = entry["data_offsets"]
        tensors[name] = _StoredTensor(file, _SAFETENSORS_DTYPES[entry["dtype"]], tuple(entry["shape"]), base + start,
                                      base + end)
    return tensors


class TensorFiles:
    """The named tensors of one checkpoint (a directory or a file), read lazily."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ConversionError(f"{self.path}: no such file or directory")
        self._safetensors: dict[str, _StoredTensor] = {}  # tensor name -> where it lies in a safetensors file
        self._eager: dict[str, torch.Tensor] = {}  # tensor name -> (memory-mapped) tensor of a torch file
        self.metadata: dict = {}  # non-tensor entries of a torch file (openai-whisper's "dims")
        for file in self._weight_files():
            if file.suffix == ".safetensors":
                for name, stored in _safetensors_index(file).items():
                    self._add(name, file)
                    self._safetensors[name] = stored
            else:
                for name, tensor in self._torch_file_tensors(file).items():
                    self._add(name, file)
                    self._eager[name] = tensor
        self.names: list[str] = sorted([*self._safetensors, *self._eager])

    def _add(self, name: str, file: Path) -> None:
        if name in self._safetensors or name in self._eager:
            raise ConversionError(f"{file}: tensor {name} is also in another file of {self.path}; remove the "
                                  "duplicate file")

    def _weight_files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            index = self.path / index_name
            if index.is_file():
                weight_map = json.loads(index.read_text())["weight_map"]
                files = [self.path / name for name in sorted(set(weight_map.values()))]
                missing = [str(file) for file in files if not file.is_file()]
                if missing:
                    raise ConversionError(f"{index}: lists {missing[0]}, which does not exist; download every shard")
                return files
        for pattern in ("*.safetensors", "pytorch_model*.bin"):
            files = sorted(self.path.glob(pattern))
            if files:
                return files
        raise ConversionError(f"{self.path}: no *.safetensors or pytorch_model*.bin weights in this directory")

    def _torch_file_tensors(self, file: Path) -> dict[str, torch.Tensor]:
        if file.suffix not in _TORCH_FILE_SUFFIXES:
            raise ConversionError(f"{file}: unknown weight format; expected .safetensors, .bin, .pt or .pth")
        try:
            content = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (non-zip) format cannot be memory-mapped
            content = torch.load(file, map_location="cpu", weights_only=True)
        if isinstance(content, dict) and isinstance(content.get("model_state_dict"), dict):  # openai-whisper
            self.metadata = {key: value for key, value in content.items() if key != "model_state_dict"}
            content = content["model_state_dict"]
        if not isinstance(content, dict) or not all(isinstance(v, torch.Tensor) for v in content.values()):
            raise ConversionError(f"{file}: not a state dict of tensors")
        return content

    def __contains__(self, name: str) -> bool:
        return name in self._safetensors or name in self._eager

    def meta(self, name: str) -> torch.Tensor:
        """A meta tensor of the tensor's shape and dtype (nothing is read)."""
        if name in self._eager:
            return self._eager[name].to("meta")
        stored = self._stored(name)
        return torch.empty(stored.shape, dtype=stored.dtype, device="meta")

    def load(self, name: str) -> torch.Tensor:
        """The tensor's values (read from disk now)."""
        if name in self._eager:
            return self._eager[name]
        return self._stored(name).read()

    def _stored(self, name: str) -> _StoredTensor:
        if name not in self._safetensors:
            raise ConversionError(f"{name}: missing from {self.path}; is it the checkpoint kind the flag says?")
        return self._safetensors[name]

    def config(self) -> dict:
        """The directory's config.json, or {} (a single file has none)."""
        file = self.path / "config.json"
        return json.loads(file.read_text()) if self.path.is_dir() and file.is_file() else {}


class InMemoryTensors:
    """A state dict behind TensorFiles' interface: converters and tests share one code path with files on disk."""

    def __init__(self, state: dict[str, torch.Tensor], label: str = "the state dict") -> None:
        self._state = state
        self.path = Path(label)
        self.names = sorted(state)

    def __contains__(self, name: str) -> bool:
        return name in self._state

    def meta(self, name: str) -> torch.Tensor:
        return self.load(name).to("meta")

    def load(self, name: str) -> torch.Tensor:
        if name not in self._state:
            raise ConversionError(f"{name}: missing from {self.path}")
        return self._state[name]
