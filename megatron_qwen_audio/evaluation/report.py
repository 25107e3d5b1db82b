"""The demo report: loss curves of the training stages as PNGs, and `report.md` tying them to the held-out metrics.

Inputs are what the other tools leave behind, so the report needs no model and no GPU: each stage's run directory
holds the metrics.jsonl of training/metrics.py (training lines with "loss" and "task_loss", held-out lines with
"heldout_loss"), and the evaluation folder the metrics.md table of `mqa-eval`.

A resumed run appends to its metrics.jsonl and logs again the steps after its checkpoint; the later line of a step
wins, so the curves show the run that went on. Each stage is a new run whose steps count from 1 (`init_from` reads
weights only), so the combined plot lays the stages end to end.

Figures are drawn on matplotlib's Agg canvas directly, never through pyplot, so no display is needed and no global
backend is switched under other code in the same process.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from megatron_qwen_audio.evaluation.cli import AUDIO_DEPENDENCE_JSON, METRICS_JSON, METRICS_TABLE
from megatron_qwen_audio.training.metrics import METRICS_FILE

__all__ = ["REPORT_FILE", "ReportError", "StageMetrics", "headline", "main", "plot_losses", "read_metrics",
           "write_report"]

REPORT_FILE = "report.md"
COMBINED_PLOT = "loss_all_stages.png"
OVERALL = "all tasks"  # table row and legend entry of the overall loss
HELDOUT = "held-out"  # table row and legend entry of the held-out loss

Points = dict[int, float]  # step -> loss


class ReportError(ValueError):
    """A missing or malformed input file; the message is one line naming the file (and line)."""


@dataclass
class StageMetrics:
    """One stage's losses by step: overall, per task (only the steps whose interval had the task), held-out."""

    name: str
    loss: Points = field(default_factory=dict)
    task_loss: dict[str, Points] = field(default_factory=dict)
    heldout: Points = field(default_factory=dict)


def _read_text(path: Path, what: str) -> str:
    """The UTF-8 text of an input file; ReportError naming it when it is missing, unreadable or not text."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ReportError(f"{path}: cannot read {what} ({reason})") from None


def read_metrics(name: str, run_dir: Path) -> StageMetrics:
    """The losses of the run directory's metrics.jsonl; ReportError at the first line that is not one the
    training metrics logger writes, or when the file is missing or has no training line."""
    path = Path(run_dir) / METRICS_FILE
    stage = StageMetrics(name)
    for number, line in enumerate(_read_text(path, "the training metrics").splitlines(), start=1):
        if line.strip():
            try:
                _add_line(stage, _parse(line))
            except ValueError as error:
                raise ReportError(f"{path}:{number}: {error}") from None
    if not stage.loss:
        raise ReportError(f"{path}: no training line (with \"loss\")")
    return stage


def _parse(line: str) -> object:
    """The JSON value of one line, its syntax error said without the decoder's "line 1" (the file's line is named)."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error.msg} at column {error.colno}") from None


def _add_line(stage: StageMetrics, line: object) -> None:
    """Put one metrics line's losses into `stage`, telling training and held-out lines apart by their keys."""
    if not isinstance(line, dict):
        raise ValueError(f"not a JSON object: {line!r}")
    step = line.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        raise ValueError(f"\"step\" is not an integer: {step!r}")
    if "heldout_loss" in line:
        stage.heldout[step] = _number(line, "heldout_loss")
    elif "loss" in line:
        stage.loss[step] = _number(line, "loss")
        task_loss = line.get("task_loss")
        if not isinstance(task_loss, dict):
            raise ValueError(f"\"task_loss\" is not an object of task -> loss: {task_loss!r}")
        for task in task_loss:
            stage.task_loss.setdefault(task, {})[step] = _number(task_loss, task)
    else:
        raise ValueError("neither a training line (\"loss\") nor a held-out line (\"heldout_loss\")")


def _number(values: Mapping, key: str) -> float:
    """`values[key]` as a float; ValueError naming the key when it is not a number (NaN is one: a diverged step)."""
    value = values[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{key!r} is not a number: {value!r}")
    return float(value)


def _sorted(points: Points) -> tuple[list[int], list[float]]:
    """Steps in order and their losses, as matplotlib takes them."""
    steps = sorted(points)
    return steps, [points[step] for step in steps]


def _save(figure: Figure, path: Path) -> Path:
    """Render `figure` with Agg into the PNG `path`."""
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png")
    return path


def _new_axes(title: str, xlabel: str) -> tuple[Figure, Axes]:
    """A figure with one labelled loss-over-steps axes."""
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("loss per target token")
    axes.grid(alpha=0.3)
    return figure, axes


def _stage_file(index: int, name: str) -> str:
    """The stage's PNG name; the index keeps stages apart whose names differ only in characters dropped here."""
    return f"loss_{index}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"


def _plot_stage(stage: StageMetrics, path: Path) -> Path:
    """Training loss per task, the overall loss and the held-out points of one stage over its steps."""
    figure, axes = _new_axes(f"{stage.name}: training loss per task", "step")
    for task in sorted(stage.task_loss):
        axes.plot(*_sorted(stage.task_loss[task]), linewidth=1, alpha=0.8, label=task)
    axes.plot(*_sorted(stage.loss), color="black", linewidth=2, label=OVERALL)
    if stage.heldout:
        axes.plot(*_sorted(stage.heldout), "o", color="red", label=HELDOUT)
    axes.legend(fontsize="small")
    return _save(figure, path)


def _plot_combined(stages: Sequence[StageMetrics], path: Path) -> Path:
    """The overall loss of all stages end to end on one step axis, each stage's start marked and named."""
    figure, axes = _new_axes("training loss of all stages", "step (stages consecutive)")
    start = 0
    for stage in stages:
        steps, losses = _sorted(stage.loss)
        axes.plot([start + step for step in steps], losses, linewidth=1.5)
        axes.axvline(start, color="gray", linestyle="--", linewidth=1)
        axes.text(start, 0.98, f" {stage.name}", transform=axes.get_xaxis_transform(), va="top", fontsize="small",
                  backgroundcolor=(1, 1, 1, 0.7))
        start += steps[-1]
    return _save(figure, path)


def _plot(stages: Sequence[StageMetrics], out_dir: Path) -> list[Path]:
    """One PNG per stage and the combined one, in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [_plot_stage(stage, out_dir / _stage_file(index, stage.name)) for index, stage in enumerate(stages, 1)]
    return paths + [_plot_combined(stages, out_dir / COMBINED_PLOT)]


def _read_stages(stages: Sequence[tuple[str, Path]]) -> list[StageMetrics]:
    """The metrics of each (name, run directory), all read before anything is drawn."""
    if not stages:
        raise ReportError("no training stage given")
    return [read_metrics(name, run_dir) for name, run_dir in stages]


def plot_losses(stages: Sequence[tuple[str, Path]], out_dir: Path) -> list[Path]:
    """Draw each (name, run directory) stage's loss per task and the stages' overall loss end to end as PNGs in
    `out_dir`; returns the files, the stages' in order, then the combined one."""
    return _plot(_read_stages(stages), Path(out_dir))


def _first_last_row(stage: str, task: str, points: Points) -> str:
    """A table row with the first and last logged loss of `points`."""
    steps, losses = _sorted(points)
    return f"| {stage} | {task} | {steps[0]} | {losses[0]:.4f} | {steps[-1]} | {losses[-1]:.4f} |"


def _loss_table(stages: Sequence[StageMetrics]) -> list[str]:
    """First and last training loss of each stage, per task, overall and held-out, as Markdown table lines."""
    lines = ["| stage | task | first step | first loss | last step | last loss |", "|---|---|--:|--:|--:|--:|"]
    for stage in stages:
        lines += [_first_last_row(stage.name, task, stage.task_loss[task]) for task in sorted(stage.task_loss)]
        lines.append(_first_last_row(stage.name, OVERALL, stage.loss))
        if stage.heldout:
            lines.append(_first_last_row(stage.name, HELDOUT, stage.heldout))
    return lines


def _read_eval_table(eval_dir: Path) -> str:
    """The held-out metrics table that `mqa-eval` wrote; ReportError naming the file when it cannot be read."""
    return _read_text(Path(eval_dir) / METRICS_TABLE, "the evaluation table").strip()


def write_report(stages: Sequence[tuple[str, Path]], eval_dir: Path, out_dir: Path,
                 extra: Mapping[str, str] | None = None) -> Path:
    """Write `out_dir/report.md`: the held-out metrics, each stage's first and last loss per task, links to the loss
    plots (drawn into `out_dir`) and the `extra` key: value lines; returns its path. Every input is read before
    anything is written, so a bad file leaves no half report."""
    out_dir = Path(out_dir)
    metrics = _read_stages(stages)
    eval_table = _read_eval_table(eval_dir)
    plots = _plot(metrics, out_dir)
    lines = ["# Demo report", "", "## Held-out metrics", "", eval_table, "", "## Training loss", ""]
    lines += _loss_table(metrics)
    lines += ["", "## Loss curves", ""]
    lines += [f"![{path.stem}]({path.name})" for path in plots]  # beside report.md: links relative to it
    if extra:
        lines += ["", "## Notes", ""] + [f"- {key}: {value}" for key, value in extra.items()]
    path = out_dir / REPORT_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


AUDIO_GAP_TARGET, LID_ACCURACY_TARGET = 0.10, 0.80  # the demo's pass marks: the model uses the audio


def headline(eval_dir: Path) -> dict[str, str]:
    """The two figures that show the model uses the audio, from `mqa-eval`'s files: how much lower the transcription
    loss is with each clip's own audio than with another clip's, and language-identification accuracy (chance: one
    in the number of languages)."""
    lines = {}
    for row in json.loads(_read_text(Path(eval_dir) / AUDIO_DEPENDENCE_JSON, "the audio-dependence file")):
        verdict = "met" if row["relative_gap"] >= AUDIO_GAP_TARGET else "NOT met"
        lines[f"{row['task']} loss, own vs swapped audio"] = (
            f"{row['matched_loss']:.3f} vs {row['swapped_loss']:.3f} nats/token over {row['samples']} clips: "
            f"{100 * row['relative_gap']:.1f}% lower with the own audio (target >= {100 * AUDIO_GAP_TARGET:.0f}%: "
            f"{verdict})")
    lid = [row for row in json.loads(_read_text(Path(eval_dir) / METRICS_JSON, "the metrics file"))
           if row["task"] == "lid"]
    if lid:
        correct = sum(row["accuracy"] * row["samples"] for row in lid)
        samples = sum(row["samples"] for row in lid)
        verdict = "met" if correct / samples >= LID_ACCURACY_TARGET else "NOT met"
        lines["language identification accuracy"] = (
            f"{correct / samples:.3f} over {samples} clips in {len(lid)} languages (chance {1 / len(lid):.2f}; "
            f"target >= {LID_ACCURACY_TARGET:.2f}: {verdict})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """`mqa-report --stage NAME=RUN_DIR ... --eval EVAL_DIR --out DIR`: plots, report.md, and the tables printed."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="mqa-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", action="append", required=True, metavar="NAME=RUN_DIR",
                        help="a training stage in order (repeat for each)")
    parser.add_argument("--eval", type=Path, required=True, help="mqa-eval's output folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md and the plots")
    args = parser.parse_args(argv)
    stages = [(name, Path(run_dir)) for name, _, run_dir in (stage.partition("=") for stage in args.stage)]
    try:
        extra = headline(args.eval)
        path = write_report(stages, args.eval, args.out, extra)
    except ReportError as error:
        print(f"mqa-report: {error}", file=sys.stderr)
        return 2
    print(_read_eval_table(args.eval))
    print("\n".join(f"{key}: {value}" for key, value in extra.items()))
    print(f"report: {path}; loss plots: {args.out}/*.png")
    return 0
