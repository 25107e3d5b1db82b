"""The training loop end to end on CPU: the launch scripts, `mqa-train`, checkpoints, resume, freeze masks, loss.

Every run trains the tiny model (configs/tiny_stage1.yaml / tiny_stage2.yaml with overrides) on synthetic shard sets
that carry the real tokenizer's fingerprint. Launches cost seconds each, so a module fixture runs them all once:
- "deepspeed": the DeepSpeed launcher, 2 ranks at TP=2, stage 1, 4 steps, saving every 2;
- "first_half" + "second_half": the same run through `bash launch/pretrain.sh --nproc 2`, stopped at step 2 and
  resumed (resume auto) to step 4: must equal "deepspeed" exactly (losses and final parameters);
- "sft": `bash launch/sft.sh` stage 2 at TP=2, 2 steps from "deepspeed"'s weights (init_from);
- "preempted" + "after_preemption": SIGUSR1 to one rank of a long run, then a run that resumes its checkpoint and stops
  after one step by its `exit_duration_minutes`;
- "loss" / "sample_loss" / "packed_sample_loss": 2 data-parallel ranks x 2 micro-batches, token / sample loss
  averaging, the last with packed batches: the reported loss and gradient norm against the per-sample losses summed by
  hand (trainer_loss_worker.py).
The optimizer's decay is constant, so a run's step count does not change its learning rates.
"""
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from process_launch import training_environment

from megatron_qwen_audio.text.tokenizer import QwenTokenizer

HERE = Path(__file__).parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "data"))
from synthetic_shard_sets import write_shard_set  # noqa: E402

LAUNCH_TIMEOUT_S = 300
STAGE1 = REPO / "configs" / "tiny_stage1.yaml"
STAGE2 = REPO / "configs" / "tiny_stage2.yaml"
PREEMPTED_RUN_STEPS = 1000


def _environment(tokenizer_file: Path) -> dict[str, str]:
    environment = training_environment(tokenizer_file)
    environment["PYTHONPATH"] = os.pathsep.join([str(HERE), environment.get("PYTHONPATH", "")])
    return environment


def _run(name: str, command: list[str], environment: dict, timings: dict) -> subprocess.CompletedProcess:
    started = time.monotonic()
    finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True,
                              timeout=LAUNCH_TIMEOUT_S)
    timings[name] = time.monotonic() - started
    if finished.returncode != 0:
        pytest.fail(f"{name} ({' '.join(command)}) exited {finished.returncode}:\n{finished.stdout[-3000:]}\n"
                    f"{finished.stderr[-5000:]}")
    return finished


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


def _preempt_one_rank(command: list[str], environment: dict, run_dir: Path, timings: dict) -> int:
    """Start a long run, send SIGUSR1 to its second rank once a step is logged; returns the exit code."""
    started = time.monotonic()
    with subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as launch:
        metrics = run_dir / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().strip()):
            assert launch.poll() is None, launch.stdout.read()[-5000:]
            assert time.monotonic() - started < LAUNCH_TIMEOUT_S, "the run logged no step"
            time.sleep(0.1)
        ranks = sorted(_children(launch.pid))  # torchrun's children: the two ranks
        assert len(ranks) == 2, ranks
        os.kill(ranks[1], signal.SIGUSR1)
        output, _ = launch.communicate(timeout=LAUNCH_TIMEOUT_S)
    timings["preempted"] = time.monotonic() - started
    assert launch.returncode == 0, output[-5000:]
    return launch.returncode


@pytest.fixture(scope="module")
def runs(tmp_path_factory, qwen_tokenizer_file):
    root = tmp_path_factory.mktemp("trainer")
    fingerprint = QwenTokenizer.from_file(qwen_tokenizer_file).fingerprint
    write_shard_set(root / "shards" / "train", [14, 12], seed=1, tokenizer_fingerprint=fingerprint)
    write_shard_set(root / "shards" / "heldout", [6], seed=2, tokenizer_fingerprint=fingerprint)
    environment = _environment(qwen_tokenizer_file)
    common = [f"data.train=[{{path_or_url: {root / 'shards' / 'train'}}}]",
              f"data.heldout=[{{path_or_url: {root / 'shards' / 'heldout'}}}]",
              "data.loader.workers=0", "data.loader.max_batch_tokens=320", "optimizer.decay=constant",
              "log_interval=1", "eval_interval=2", "eval_steps=1", "save_interval=2", "keep_last=0"]
    tp2, pp2 = ["parallel.tensor_parallel=2"], ["parallel.pipeline_parallel=2"]
    run_dirs = {name: root / name for name in ("deepspeed", "resumed", "sft", "preempted", "loss", "sample_loss",
                                        "packed_sample_loss")}
    timings: dict[str, float] = {}
    pretrain, sft = ["bash", "launch/pretrain.sh"], ["bash", "launch/sft.sh"]

    port = random.randint(20000, 40000)
    _run("deepspeed", ["deepspeed", "--num_gpus", "2", "--master_port", str(port), "--no_python",
                       "launch/pretrain.sh", str(STAGE1), *common, *tp2, "steps=4",
                       f"run_dir={run_dirs['deepspeed']}"], environment, timings)
    resumed = [*pretrain, str(STAGE1), "--nproc", "2", *common, *tp2, f"run_dir={run_dirs['resumed']}"]
    _run("first_half", [*resumed, "steps=2"], environment, timings)
    _run("second_half", [*resumed, "steps=4"], environment, timings)
    _run("sft", [*sft, str(STAGE2), "--nproc=2", *common, *pp2, "steps=2",
                 f"init_from={run_dirs['deepspeed']}", f"run_dir={run_dirs['sft']}"], environment, timings)
    # stage 1 at PP=2: the second pipeline stage trains nothing, and still saves and resumes
    preempted = [*pretrain, str(STAGE1), "--nproc", "2", *common, *pp2, f"run_dir={run_dirs['preempted']}"]
    _preempt_one_rank([*preempted, f"steps={PREEMPTED_RUN_STEPS}"], environment, run_dirs["preempted"], timings)
    stopped_at = _metrics(run_dirs["preempted"])[-1]["step"]
    # the same long run resumed with a time limit that has passed by its first step: it saves there and stops
    after = _run("after_preemption", [*preempted, f"steps={PREEMPTED_RUN_STEPS}", "exit_duration_minutes=0.000001"],
                 environment, timings)
    hand_summed = {}
    for name, averaging, packed in (("loss", "token", False), ("sample_loss", "sample", False),
                                    ("packed_sample_loss", "sample", True)):
        reference = root / f"hand_summed_{name}.json"
        _run(name, [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(HERE / "trainer_loss_worker.py"), str(STAGE1), str(reference), *common,
                    "parallel.micro_batches_per_step=2", "steps=1", f"loss_averaging={averaging}",
                    f"data.loader.pack_sequences={str(packed).lower()}", f"run_dir={run_dirs[name]}"],
             environment, timings)
        hand_summed[name] = json.loads(reference.read_text())
    print("launch wall times:", {name: f"{seconds:.1f} s" for name, seconds in timings.items()})
    yield {"dirs": run_dirs, "stopped_at": stopped_at, "after_preemption_stdout": after.stdout,
           "hand_summed": hand_summed}
    shutil.rmtree(root, ignore_errors=True)


def _metrics(run_dir: Path) -> list[dict]:
    """The training lines of a run's metrics (held-out evaluations are lines of their own)."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if "loss" in line]


def _parameters(checkpoint: Path, tmp_path: Path) -> dict[str, torch.Tensor]:
    """The model tensors of a checkpoint, read without a process group (megatron's torch_dist is torch DCP)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    target = tmp_path / f"{checkpoint.parent.parent.name}-{checkpoint.name}.pt"
    dcp_to_torch_save(checkpoint / "model_optim", target)
    state = torch.load(target, weights_only=False)
    return {name: tensor for name, tensor in state.items()
            if isinstance(tensor, torch.Tensor) and name.split(".")[0] in
            ("audio_encoder", "embedding", "decoder", "output_layer")}


def test_deepspeed_launch_at_tp2_logs_finite_losses_and_writes_complete_checkpoints(runs):
    metrics = _metrics(runs["dirs"]["deepspeed"])
    assert [line["step"] for line in metrics] == [1, 2, 3, 4]
    assert all(math.isfinite(line["loss"]) and line["loss"] > 0 for line in metrics)
    checkpoints = runs["dirs"]["deepspeed"] / "checkpoints"
    assert sorted(folder.name for folder in checkpoints.iterdir()) == ["step-2", "step-4"]
    for folder in checkpoints.iterdir():
        assert (folder / "complete").is_file()
        assert json.loads((folder / "meta.json").read_text())["layout"]["tensor_parallel"] == 2


def test_stopping_at_step_2_and_resuming_reproduces_the_uninterrupted_run(runs, tmp_path):
    uninterrupted, resumed = _metrics(runs["dirs"]["deepspeed"]), _metrics(runs["dirs"]["resumed"])
    assert [line["step"] for line in resumed] == [1, 2, 3, 4]
    assert [line["loss"] for line in resumed] == [line["loss"] for line in uninterrupted]
    assert [line["grad_norm"] for line in resumed] == [line["grad_norm"] for line in uninterrupted]
    expected = _parameters(runs["dirs"]["deepspeed"] / "checkpoints" / "step-4", tmp_path)
    actual = _parameters(runs["dirs"]["resumed"] / "checkpoints" / "step-4", tmp_path)
    assert expected.keys() == actual.keys() and len(expected) > 10
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name


def test_stage1_at_tp2_updates_the_encoder_and_leaves_the_frozen_llm_bit_identical(runs, tmp_path):
    checkpoints = runs["dirs"]["deepspeed"] / "checkpoints"
    before, after = _parameters(checkpoints / "step-2", tmp_path), _parameters(checkpoints / "step-4", tmp_path)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    encoder = {name for name in before if name.startswith("audio_encoder.") and "positional_embedding" not in name}
    assert changed == encoder


def test_stage1_at_pp2_updates_the_encoder_and_leaves_the_frozen_llm_bit_identical(runs, tmp_path):
    checkpoints = runs["dirs"]["preempted"] / "checkpoints"
    stopped_at = runs["stopped_at"]
    before = _parameters(checkpoints / f"step-{stopped_at}", tmp_path)
    after = _parameters(checkpoints / f"step-{stopped_at + 1}", tmp_path)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    encoder = {name for name in before if name.startswith("audio_encoder.") and "positional_embedding" not in name}
    assert encoder and changed == encoder


def test_stage2_at_pp2_from_tp2_stage1_weights_keeps_the_encoder_bit_identical(runs, tmp_path):
    stage1 = _parameters(runs["dirs"]["deepspeed"] / "checkpoints" / "step-4", tmp_path)
    stage2 = _parameters(runs["dirs"]["sft"] / "checkpoints" / "step-2", tmp_path)
    for name, tensor in stage1.items():
        if name.startswith("audio_encoder."):
            assert torch.equal(stage2[name], tensor), name
    decoder = [name for name in stage1 if name.startswith("decoder.layers.")]
    assert decoder and all(not torch.equal(stage2[name], stage1[name]) for name in decoder)


def test_preemption_saves_exits_0_and_the_next_run_resumes_there(runs):
    stopped_at = runs["stopped_at"]
    assert 1 <= stopped_at < PREEMPTED_RUN_STEPS
    checkpoints = runs["dirs"]["preempted"] / "checkpoints"
    assert (checkpoints / f"step-{stopped_at}" / "complete").is_file()
    assert f"resumed from {checkpoints / f'step-{stopped_at}'} at step {stopped_at}" in runs["after_preemption_stdout"]
    assert _metrics(runs["dirs"]["preempted"])[-1]["step"] == stopped_at + 1


def test_exit_duration_saves_and_stops_every_rank_after_the_same_step(runs):
    stopped_at = runs["stopped_at"] + 1  # the resumed run's first step is past its limit
    assert (runs["dirs"]["preempted"] / "checkpoints" / f"step-{stopped_at}" / "complete").is_file()
    assert (f"exit_duration_minutes=1e-06 passed: saved step {stopped_at} of {PREEMPTED_RUN_STEPS}, stopping"
            in runs["after_preemption_stdout"])


def _hand_summed_means(hand_summed: dict) -> dict[str, float]:
    """The loss means of one step's samples (every micro-batch of every data-parallel rank) under each averaging, and
    the mean of per-micro-batch means that neither should be."""
    batches = [batch for rank in hand_summed["samples"] for batch in rank]
    assert len(batches) == 4  # 2 data-parallel ranks x 2 micro-batches
    samples = [sample for batch in batches for sample in batch]
    return {"token": sum(total for total, _ in samples) / sum(tokens for _, tokens in samples),
            "sample": sum(total / tokens for total, tokens in samples) / len(samples),
            "batch": sum(sum(t for t, _ in batch) / sum(n for _, n in batch) for batch in batches) / len(batches)}


@pytest.mark.parametrize("run, averaging, other", [("loss", "token", "batch"), ("sample_loss", "sample", "token"),
                                                  ("packed_sample_loss", "sample", "token")])
def test_reported_loss_and_gradient_norm_follow_the_loss_averaging_over_micro_batches_and_data_parallel_ranks(
        runs, run, averaging, other):
    samples_per_row = runs["hand_summed"][run]["samples_per_row"]
    assert (max(samples_per_row) > 1) == run.startswith("packed")  # packed rows hold several samples
    means = _hand_summed_means(runs["hand_summed"][run])
    reported = _metrics(runs["dirs"][run])[0]
    tolerance = 1e-6
    assert reported["loss"] == pytest.approx(means[averaging], rel=tolerance)
    # The samples differ enough to tell the means apart: at the first step every token costs about ln(vocabulary), so
    # they are close, but still many times further apart than the tolerance.
    assert abs(means[other] - means[averaging]) > 10 * tolerance * means[averaging]
    # the gradient is that of the same mean: its norm, before clipping, equals the hand-made one
    assert reported["grad_norm"] == pytest.approx(runs["hand_summed"][run]["grad_norm"], rel=1e-4)


def test_config_error_exits_2_with_one_line_before_any_process_group(qwen_tokenizer_file, tmp_path):
    environment = _environment(qwen_tokenizer_file)
    environment.update(RANK="0", WORLD_SIZE="3", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    finished = subprocess.run(
        ["mqa-train", "--local_rank=0", str(STAGE1), "parallel.tensor_parallel=3", f"run_dir={tmp_path}"],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.heads=4 is not divisible by parallel.tensor_parallel=3" in lines[0], lines
    assert not any(tmp_path.iterdir())
