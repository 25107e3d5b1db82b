"""Freeze masks: which parameters a training stage updates, set from the stage's glob patterns over parameter names.

Qwen-Audio trains the same model in two stages: stage 1 updates the audio encoder under a frozen LLM, stage 2 the LLM
under a frozen encoder. A stage lists `trainable` and `frozen` patterns (fnmatch over full dotted names such as
`decoder.layers.3.mlp.linear_fc1.weight`; `*` also crosses dots). Every parameter must be claimed by exactly one
list, so a module added to the model without a decision is an error rather than a silent default, and so is a
pattern that matches nothing (a typo would otherwise leave a module in the wrong state).

Apply the masks before the DDP wrapper and the optimizer are built: a frozen parameter (requires_grad False) then gets
no gradient buffer and no optimizer state. Freezing does not cut the backward pass: a frozen module still passes
activation gradients back to a trained module before it (stage 1's frozen LLM back-propagates into the encoder).

Pipeline parallelism: a rank holds only its stage's modules, so on one rank a pattern may match nothing (the encoder
lives on pipeline stage 0 only) and a rank may hold nothing trainable (stage 1 at PP>1: the later pipeline stages hold
only frozen decoder layers). Both are errors of the whole model only. A caller holding the whole model keeps the
defaults of `apply_freeze`. A pipeline-parallel caller passes `require_trainable=False, require_every_pattern=False`
on each rank, gathers the reports of one model replica (e.g. `torch.distributed.all_gather_object` over the pipeline
group), and runs `raise_for_unmatched_patterns()` and `raise_if_nothing_trainable()` on `FreezeReport.combine(...)`
on every rank alike, so all ranks fail together.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from torch import nn

from megatron_qwen_audio.training.config import StageConfig
from megatron_qwen_audio.training.config_yaml import ConfigError

MAX_EXAMPLES = 5  # parameter names quoted in an error message


@dataclass
class ParameterCounts:
    """Elements (not tensors) of trainable and frozen parameters."""

    trainable: int = 0
    frozen: int = 0

    @property
    def total(self) -> int:
        return self.trainable + self.frozen

    def add(self, other: ParameterCounts) -> None:
        self.trainable += other.trainable
        self.frozen += other.frozen


@dataclass
class FreezeReport:
    """What a stage's masks did to (this rank's part of) a model, for the start-up log and the whole-model checks.

    `counts` holds a row per top-level module ("decoder") and per second-level part of it ("decoder.layers",
    "decoder.final_layernorm"; a parameter held directly by a top-level module is its own part), in model order.
    """

    stage: str
    counts: dict[str, ParameterCounts] = field(default_factory=dict)
    trainable_matches: dict[str, int] = field(default_factory=dict)  # trainable pattern -> parameter tensors matched
    frozen_matches: dict[str, int] = field(default_factory=dict)  # frozen pattern -> parameter tensors matched

    @property
    def top_level_modules(self) -> list[str]:
        return [name for name in self.counts if "." not in name]

    @property
    def totals(self) -> ParameterCounts:
        totals = ParameterCounts()
        for name in self.top_level_modules:
            totals.add(self.counts[name])
        return totals

    def add_parameter(self, parameter_name: str, numel: int, trainable: bool) -> None:
        top, *rest = parameter_name.split(".")
        part = f"{top}.{rest[0]}" if rest else None
        for row in (top, part):
            if row is not None:
                counts = self.counts.setdefault(row, ParameterCounts())
                counts.add(ParameterCounts(numel, 0) if trainable else ParameterCounts(0, numel))

    @classmethod
    def combine(cls, reports: Sequence[FreezeReport]) -> FreezeReport:
        """The report of a model split over ranks (e.g. the pipeline stages of one replica): counts and pattern
        matches summed, rows in first-seen order."""
        assert reports and len({report.stage for report in reports}) == 1, "combine reports of one stage"
        combined = cls(reports[0].stage)
        for report in reports:
            for name, counts in report.counts.items():
                combined.counts.setdefault(name, ParameterCounts()).add(counts)
            for mine, theirs in ((combined.trainable_matches, report.trainable_matches),
                                 (combined.frozen_matches, report.frozen_matches)):
                for pattern, matches in theirs.items():
                    mine[pattern] = mine.get(pattern, 0) + matches
        return combined

    def raise_for_unmatched_patterns(self) -> None:
        for kind, matches in (("trainable", self.trainable_matches), ("frozen", self.frozen_matches)):
            unmatched = [pattern for pattern, count in matches.items() if count == 0]
            if unmatched:
                raise ConfigError(
                    f"stage {self.stage!r}: stage.{kind} pattern {unmatched[0]!r} matches no parameter; the model's "
                    f"top-level modules are {', '.join(self.top_level_modules)} (patterns match full dotted names, "
                    "e.g. 'decoder.layers.*')")

    def raise_if_nothing_trainable(self) -> None:
        if self.totals.trainable == 0:
            raise ConfigError(f"stage {self.stage!r} leaves nothing to train: all {self.totals.frozen:,} parameters "
                              "are frozen; add patterns to stage.trainable")

    def render(self) -> str:
        """A table of trainable and frozen parameters per module, with totals and percentages."""
        totals = self.totals
        rows = []
        for top in self.top_level_modules:
            parts = [name for name in self.counts if name.startswith(f"{top}.")]
            rows.append((top, self.counts[top]))
            if len(parts) > 1:
                rows += [(f"  {name}", self.counts[name]) for name in parts]
        rows.append(("total", totals))
        width = max(len(name) for name, _ in rows)
        lines = [f"stage {self.stage!r}: {totals.trainable:,} of {totals.total:,} parameters trainable "
                 f"({_percent(totals.trainable, totals.total)})",
                 f"{'module':<{width}}  {'trainable':>15}  {'frozen':>15}  {'total':>15}  {'trainable':>9}  "
                 f"{'of all':>7}"]
        for name, counts in rows:
            lines.append(f"{name:<{width}}  {counts.trainable:>15,}  {counts.frozen:>15,}  {counts.total:>15,}  "
                         f"{_percent(counts.trainable, counts.total):>9}  {_percent(counts.total, totals.total):>7}")
        return "\n".join(lines)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def apply_freeze(model: nn.Module, stage: StageConfig, *, require_trainable: bool = True,
                 require_every_pattern: bool = True) -> FreezeReport:
    """Set requires_grad of every parameter of `model` from `stage`'s patterns; return the counts.

    Errors (ConfigError, raised before any parameter changes): a parameter matched by both lists or by neither; with
    require_every_pattern, a pattern that matches no parameter; with require_trainable, nothing left to train. Pass
    False for both on a rank that holds only part of the model (see the module doc).
    """
    report = FreezeReport(stage.name, trainable_matches=dict.fromkeys(stage.trainable, 0),
                          frozen_matches=dict.fromkeys(stage.frozen, 0))
    decisions, both, neither = [], [], []
    for name, parameter in model.named_parameters():
        trainable = [pattern for pattern in stage.trainable if fnmatchcase(name, pattern)]
        frozen = [pattern for pattern in stage.frozen if fnmatchcase(name, pattern)]
        for pattern in trainable:
            report.trainable_matches[pattern] += 1
        for pattern in frozen:
            report.frozen_matches[pattern] += 1
        if trainable and frozen:
            both.append(f"{name} (trainable {trainable[0]!r}, frozen {frozen[0]!r})")
        elif not trainable and not frozen:
            neither.append(name)
        report.add_parameter(name, parameter.numel(), bool(trainable))
        decisions.append((parameter, bool(trainable)))
    if require_every_pattern:
        report.raise_for_unmatched_patterns()
    if both:
        raise ConfigError(f"stage {stage.name!r}: {len(both)} parameters match both a trainable and a frozen pattern, "
                          f"e.g. {', '.join(both[:MAX_EXAMPLES])}; make stage.trainable and stage.frozen disjoint")
    if neither:
        raise ConfigError(f"stage {stage.name!r}: {len(neither)} parameters match no trainable or frozen pattern, "
                          f"e.g. {', '.join(neither[:MAX_EXAMPLES])}; add a pattern covering them to stage.trainable "
                          "or stage.frozen")
    if require_trainable:
        report.raise_if_nothing_trainable()
    for parameter, trainable in decisions:
        parameter.requires_grad_(trainable)
    return report
