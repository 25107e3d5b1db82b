"""A conversion as data: for every tensor to write, the source tensors it comes from and how they combine.

Formats are described once, in both directions, as `TensorRule`s: our full-model names, the format's names, and the
two functions between them (a rule may join or split tensors: fused qkv, [gate; up], embedding rows). Importing
plans each of our tensors from its rule (`plan_from_rules`); exporting walks the rules the other way
(`export_tensors`), so an import of an export gives back the same tensors.

Planning before reading lets every bad input fail before any output exists: a missing source tensor, a source tensor
no target uses, and a shape that disagrees with the target's config are all found by `check_plan`, which runs each
`combine` on meta tensors (shapes only, nothing read). Writing then builds one target at a time (`Derived.build`), so
memory holds one tensor (plus its sources), never the model.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from megatron_qwen_audio.convert.tensor_files import ConversionError


class TensorSource(Protocol):
    """Named tensors read one at a time: TensorFiles, InMemoryTensors, a checkpoint's CheckpointReader."""

    path: Path
    names: list[str]

    def __contains__(self, name: str) -> bool: ...

    def meta(self, name: str) -> torch.Tensor: ...

    def load(self, name: str) -> torch.Tensor: ...


@dataclass(frozen=True)
class Derived:
    """One target tensor: `combine(*source tensors)`; with no sources it is freshly made (e.g. a seeded init)."""

    files: TensorSource | None
    sources: tuple[str, ...]
    combine: Callable[..., torch.Tensor]

    def build(self) -> torch.Tensor:
        return self.combine(*(self.files.load(name) for name in self.sources))

    def meta(self) -> torch.Tensor:
        return self.combine(*(self.files.meta(name) for name in self.sources))

    def origin(self) -> str:
        return ", ".join(self.sources) if self.sources else "freshly initialised"


def copied(files: TensorSource, name: str) -> Derived:
    """The source tensor as it is."""
    return Derived(files, (name,), _identity)


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


TensorPlan = dict[str, Derived]


def check_plan(plan: Mapping[str, Derived], expected: Mapping[str, torch.Size], sources: Iterable[TensorSource],
               ignored: Callable[[str], bool] = lambda name: False) -> None:
    """Refuse a conversion that would not produce exactly the `expected` tensors from exactly the sources' tensors.

    `ignored(source name)` marks source tensors deliberately left out (e.g. a Whisper checkpoint's decoder).
    """
    for target in expected:
        if target not in plan:
            raise ConversionError(f"{target}: the target model has it but the sources provide nothing for it; check "
                                  "that the model config matches the sources (layers, heads)")
    for target in plan:
        if target not in expected:
            raise ConversionError(f"{target} (from {plan[target].origin()}): the sources have it but the target model "
                                  "does not; the sources hold more layers or modules than the model config says")
    used: set[tuple[int, str]] = set()
    for target, derived in plan.items():
        for name in derived.sources:
            if name not in derived.files:
                raise ConversionError(f"{name}: missing from {derived.files.path} (needed for {target}); is the "
                                      "source complete and of the kind its flag says?")
            used.add((id(derived.files), name))
        try:
            shape = derived.meta().shape
        except RuntimeError as error:
            raise ConversionError(f"{target} (from {derived.origin()}): source shapes do not combine ({error}); "
                                  "the source's config disagrees with its weights") from None
        if shape != expected[target]:
            raise ConversionError(f"{target} (from {derived.origin()}): shape {list(shape)} but the model config "
                                  f"gives {list(expected[target])}; the config disagrees with the weights")
    for files in sources:
        for name in files.names:
            if (id(files), name) not in used and not ignored(name):
                raise ConversionError(f"{name}: unexpected tensor in {files.path}; no target uses it (a different "
                                      "architecture, or more layers than its config says?)")


@dataclass(frozen=True)
class TensorRule:
    """Our tensors `ours` <-> a format's tensors `theirs`: `to_ours(*theirs)` and `to_theirs(*ours)` return tuples in
    the order of the other side's names, and are inverses of each other."""

    ours: tuple[str, ...]
    theirs: tuple[str, ...]
    to_ours: Callable[..., tuple[torch.Tensor, ...]]
    to_theirs: Callable[..., tuple[torch.Tensor, ...]]


def renamed(ours: str, theirs: str) -> TensorRule:
    """The same tensor under another name."""
    return TensorRule((ours,), (theirs,), _as_tuple, _as_tuple)


def _as_tuple(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tensors


def plan_from_rules(files: TensorSource, rules: Iterable[TensorRule]) -> TensorPlan:
    """Each of our tensors from the rule that makes it (a rule with several outputs is evaluated once per output)."""
    plan: TensorPlan = {}
    for rule in rules:
        for index, name in enumerate(rule.ours):
            plan[name] = Derived(files, rule.theirs, _output(rule.to_ours, index))
    return plan


def _output(function: Callable[..., tuple[torch.Tensor, ...]], index: int) -> Callable[..., torch.Tensor]:
    return lambda *tensors: function(*tensors)[index]


def export_tensors(rules: Iterable[TensorRule], read: Callable[[str], torch.Tensor]):
    """(their name, tensor) for every rule, reading our tensors through `read` one rule at a time."""
    for rule in rules:
        yield from zip(rule.theirs, rule.to_theirs(*(read(name) for name in rule.ours)), strict=True)
