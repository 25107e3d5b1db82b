"""The demo report from metrics.jsonl files written by the training metrics logger itself (wandb disabled), so that a
change of the logged format shows here: valid PNGs, first and last losses in report.md, errors naming file:line."""
import json
import re

import pytest
from PIL import Image

from megatron_qwen_audio.evaluation.cli import METRICS_TABLE
from megatron_qwen_audio.evaluation.report import REPORT_FILE, ReportError, plot_losses, write_report
from megatron_qwen_audio.training.config import WandbConfig
from megatron_qwen_audio.training.metrics import METRICS_FILE, IntervalMetrics, MetricsLogger

EVAL_TABLE = "| task | language | n | WER % |\n|---|---|--:|--:|\n| transcribe | en | 4 | 12.50 |"


def write_run(run_dir, intervals, heldout=()):
    """Log (step, {task: loss}) intervals, each task 10 target tokens, and (step, loss) held-out evaluations."""
    logger = MetricsLogger(run_dir, WandbConfig(mode="disabled"), {}, is_logging_rank=True)
    for step, task_losses in intervals:
        logger.log(IntervalMetrics(step=step, loss=sum(task_losses.values()) / len(task_losses),
                                   task_losses=task_losses, task_tokens=dict.fromkeys(task_losses, 10), seconds=1.0))
    for step, loss in heldout:
        logger.log_eval(step, loss)
    logger.close()
    return run_dir


@pytest.fixture
def stages(tmp_path):
    text = write_run(tmp_path / "text", [(1, {"text": 9.0}), (2, {"text": 8.0}), (3, {"text": 7.5})], [(3, 7.75)])
    stage1 = write_run(tmp_path / "stage1", [(1, {"transcribe": 6.0, "translate": 7.0}), (2, {"transcribe": 5.5}),
                                             (3, {"translate": 6.5}), (4, {"transcribe": 5.0, "translate": 6.0})])
    return [("text pretraining", text), ("stage 1", stage1)]


@pytest.fixture
def eval_dir(tmp_path):
    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / METRICS_TABLE).write_text(EVAL_TABLE + "\n", encoding="utf-8")
    return folder


def test_plots_are_png_files_one_per_stage_and_one_combined(stages, tmp_path):
    paths = plot_losses(stages, tmp_path / "plots")
    assert len(paths) == len(stages) + 1
    for path in paths:
        assert path.parent == tmp_path / "plots" and path.stat().st_size > 0
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100
            image.verify()


def test_report_has_eval_table_first_and_last_losses_links_and_extra(stages, eval_dir, tmp_path):
    out_dir = tmp_path / "report"
    report = write_report(stages, eval_dir, out_dir, extra={"audio dependence (asr)": "+3.20 nats"})
    assert report == out_dir / REPORT_FILE
    text = report.read_text(encoding="utf-8")
    assert EVAL_TABLE in text
    for row in ("| text pretraining | text | 1 | 9.0000 | 3 | 7.5000 |",
                "| text pretraining | held-out | 3 | 7.7500 | 3 | 7.7500 |",
                "| stage 1 | transcribe | 1 | 6.0000 | 4 | 5.0000 |",
                "| stage 1 | translate | 1 | 7.0000 | 4 | 6.0000 |",
                "| stage 1 | all tasks | 1 | 6.5000 | 4 | 5.5000 |",
                "- audio dependence (asr): +3.20 nats"):
        assert row in text
    links = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert len(links) == len(stages) + 1
    assert all((out_dir / link).is_file() for link in links)


def test_resumed_run_later_line_of_a_step_wins(tmp_path, eval_dir):
    run = write_run(tmp_path / "run", [(1, {"asr": 4.0}), (2, {"asr": 3.9}), (3, {"asr": 3.8})])
    write_run(run, [(3, {"asr": 3.7})])  # a resume from the checkpoint of step 2 logs step 3 again
    text = write_report([("s", run)], eval_dir, tmp_path / "out").read_text(encoding="utf-8")
    assert "| s | asr | 1 | 4.0000 | 3 | 3.7000 |" in text


@pytest.mark.parametrize("bad_line, reason", [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"loss": 1.0, "task_loss": {}}', "step"),
    ('{"step": 2, "lr": 0.1}', "neither a training line"),
    ('{"step": 2, "loss": "high", "task_loss": {}}', "'loss' is not a number"),
    ('{"step": 2, "loss": 1.0, "task_loss": {"asr": null}}', "'asr' is not a number"),
    ('{"step": 2, "loss": 1.0}', "task_loss"),
])
def test_malformed_line_is_named_by_file_and_line(tmp_path, bad_line, reason):
    run = write_run(tmp_path / "run", [(1, {"asr": 4.0})])
    with open(run / METRICS_FILE, "a", encoding="utf-8") as metrics:
        metrics.write(bad_line + "\n")
    with pytest.raises(ReportError) as error:
        plot_losses([("s", run)], tmp_path / "out")
    message = str(error.value)
    assert message.startswith(f"{run / METRICS_FILE}:2: ") and reason in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_missing_or_empty_inputs_are_named(tmp_path, stages):
    with pytest.raises(ReportError, match="^" + re.escape(f"{tmp_path / 'nowhere' / METRICS_FILE}: cannot read")):
        plot_losses([("s", tmp_path / "nowhere")], tmp_path / "out")
    (tmp_path / "heldout_only").mkdir()
    (tmp_path / "heldout_only" / METRICS_FILE).write_text(json.dumps({"step": 1, "heldout_loss": 2.0}) + "\n")
    with pytest.raises(ReportError, match="no training line"):
        plot_losses([("s", tmp_path / "heldout_only")], tmp_path / "out")
    with pytest.raises(ReportError, match="^" + re.escape(f"{tmp_path / 'eval' / METRICS_TABLE}: cannot read")):
        write_report(stages, tmp_path / "eval", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_headline_states_both_pass_marks_from_the_eval_files(tmp_path):
    from megatron_qwen_audio.evaluation.report import headline

    (tmp_path / "metrics.json").write_text(json.dumps([
        {"task": "transcribe", "language": "en", "samples": 5, "wer": 0.5},
        {"task": "lid", "language": "en", "samples": 10, "accuracy": 0.9},
        {"task": "lid", "language": "fr", "samples": 30, "accuracy": 0.7}]))
    (tmp_path / "audio_dependence.json").write_text(json.dumps([
        {"task": "transcribe", "samples": 8, "matched_loss": 2.0, "swapped_loss": 2.5, "relative_gap": 0.2},
        {"task": "translate", "samples": 8, "matched_loss": 2.4, "swapped_loss": 2.5, "relative_gap": 0.04}]))
    lines = headline(tmp_path)
    assert lines["language identification accuracy"].startswith("0.750 over 40 clips in 2 languages (chance 0.50")
    assert lines["language identification accuracy"].endswith("NOT met)")
    assert "20.0% lower with the own audio (target >= 10%: met)" in lines["transcribe loss, own vs swapped audio"]
    assert lines["translate loss, own vs swapped audio"].endswith("NOT met)")
