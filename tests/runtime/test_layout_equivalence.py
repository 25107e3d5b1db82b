"""Every parallel layout computes the single-process training step, on CPU, through the real megatron-core code.

Three launches (each costs seconds, so each runs several layouts one after another):
- 1 process, torchrun: the TP=1/PP=1 reference; it also draws the shared initial weights;
- 2 processes, torchrun: TP=2, PP=2, DP=2;
- 4 processes started the way `srun` starts them (SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID, no RANK): TP2xPP2,
  TP2xDP2, PP2xDP2.
Loss is compared to 1e-6 and every gradient / stepped parameter shard to 1e-5 relative: a wrong tensor-parallel
shard moves the loss by ~1e-5 but gradients by O(1), so gradients and parameters carry the check.
"""
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from layout_equivalence_worker import CLIP_GRAD, SEED
from process_launch import clean_environment, torchrun

from megatron_qwen_audio.model.parameter_shards import tensor_parallel_shard

WORKER = Path(__file__).with_name("layout_equivalence_worker.py")
LAUNCH_TIMEOUT_S = 300
TWO_PROCESS_LAYOUTS = ("2x1", "1x2", "1x1")
FOUR_PROCESS_LAYOUTS = ("2x2", "2x1", "1x2")


def _worker_command(layouts: tuple[str, ...], out: Path, initial: Path | None) -> list[str]:
    command = [str(WORKER), "--layouts", ",".join(layouts), "--out", str(out)]
    return command + (["--initial", str(initial)] if initial is not None else [])


def _torchrun(processes: int, layouts: tuple[str, ...], out: Path, initial: Path | None = None) -> None:
    torchrun(processes, _worker_command(layouts, out, initial), ",".join(layouts), LAUNCH_TIMEOUT_S)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _srun_style(processes: int, layouts: tuple[str, ...], out: Path, initial: Path) -> None:
    """Start the ranks with only the variables srun sets (plus the job script's MASTER_ADDR/PORT)."""
    base = clean_environment() | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    started = time.monotonic()
    logs = [out / f"rank{rank}.log" for rank in range(processes)]
    ranks = []
    for rank, log in enumerate(logs):
        with log.open("w") as output:  # a file, not a pipe: a chatty rank must not block on a full pipe
            ranks.append(
                subprocess.Popen(
                    [sys.executable, *_worker_command(layouts, out, initial)],
                    env=base | {"SLURM_PROCID": str(rank), "SLURM_NTASKS": str(processes), "SLURM_LOCALID": str(rank)},
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
    failed = _wait_all(ranks, deadline=started + LAUNCH_TIMEOUT_S)
    print(f"srun-style x{processes} {','.join(layouts)}: {time.monotonic() - started:.1f} s")
    if failed is not None:
        pytest.fail(f"srun-style rank {failed} failed:\n{logs[failed].read_text()[-6000:]}")


def _wait_all(ranks: list[subprocess.Popen], deadline: float) -> int | None:
    """Wait for every rank; on the first failure or at the deadline stop the rest (gloo peers would wait for it)."""
    while any(rank.poll() is None for rank in ranks) and time.monotonic() < deadline:
        if any(rank.returncode not in (None, 0) for rank in ranks):
            break
        time.sleep(0.2)
    for rank in ranks:
        if rank.poll() is None:
            rank.kill()
            rank.wait()
    return next((index for index, rank in enumerate(ranks) if rank.returncode != 0), None)


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    _torchrun(1, ("1x1",), out)
    return out


@pytest.fixture(scope="module")
def two_process_dir(tmp_path_factory, reference_dir) -> Path:
    out = tmp_path_factory.mktemp("two_processes")
    _torchrun(2, TWO_PROCESS_LAYOUTS, out, reference_dir / "initial.pt")
    return out


@pytest.fixture(scope="module")
def four_process_dir(tmp_path_factory, reference_dir) -> Path:
    out = tmp_path_factory.mktemp("four_processes")
    _srun_style(4, FOUR_PROCESS_LAYOUTS, out, reference_dir / "initial.pt")
    return out


def _load_ranks(folder: Path, layout: str, world_size: int) -> list[dict]:
    return [torch.load(folder / f"{layout}-rank{rank}.pt", weights_only=False) for rank in range(world_size)]


@pytest.fixture(scope="module")
def reference(reference_dir) -> dict:
    return _load_ranks(reference_dir, "1x1", 1)[0]


LAUNCHES = [(layout, "two_process_dir", 2) for layout in TWO_PROCESS_LAYOUTS] + [
    (layout, "four_process_dir", 4) for layout in FOUR_PROCESS_LAYOUTS
]


@pytest.fixture(params=LAUNCHES, ids=[f"{layout}-world{world}" for layout, _, world in LAUNCHES])
def layout_ranks(request) -> list[dict]:
    layout, folder_fixture, world_size = request.param
    return _load_ranks(request.getfixturevalue(folder_fixture), layout, world_size)


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).norm() / expected.norm())


def _assert_shards_match(ranks: list[dict], field: str, reference_tensors: dict[str, torch.Tensor], tolerance: float):
    seen = set()
    for result in ranks:
        layout = result["layout"]
        for name, actual in result[field].items():
            expected = tensor_parallel_shard(
                reference_tensors[name], name, layout.tensor_parallel_rank, layout.tensor_parallel
            )
            assert actual.shape == expected.shape, (name, layout)
            assert _relative_error(actual, expected) <= tolerance, (name, layout, _relative_error(actual, expected))
            seen.add(name)
    assert seen == set(reference_tensors), "some parameters are held by no rank"


def test_layout_matches_single_process_loss(layout_ranks, reference):
    last_stage = [r for r in layout_ranks if r["layout"].is_last_stage]
    for result in last_stage:  # tensor-parallel ranks of one data-parallel replica report the same sums
        twin = next(r for r in last_stage if r["layout"].data_parallel_rank == result["layout"].data_parallel_rank)
        assert torch.equal(result["loss_report"], twin["loss_report"])
    per_replica = [r["loss_report"] for r in last_stage if r["layout"].tensor_parallel_rank == 0]
    assert len(per_replica) == layout_ranks[0]["layout"].data_parallel
    loss_sum, tokens = torch.stack(per_replica).sum(dim=0)
    reference_sum, reference_tokens = reference["loss_report"]
    assert tokens == reference_tokens == 116  # 4 x 32 positions minus the 12 masked ones
    assert abs(loss_sum / tokens - reference_sum / reference_tokens) <= 1e-6 * (reference_sum / reference_tokens)


def test_layout_matches_single_process_gradients(layout_ranks, reference):
    _assert_shards_match(layout_ranks, "grads", reference["grads"], tolerance=1e-5)


def test_layout_matches_single_process_optimizer_step(layout_ranks, reference):
    for result in layout_ranks:
        assert abs(result["grad_norm"] - reference["grad_norm"]) <= 1e-5 * reference["grad_norm"]
    _assert_shards_match(layout_ranks, "params_after_step", reference["params_after_step"], tolerance=1e-5)


def test_step_moves_parameters_beyond_the_tolerance(reference_dir, reference):
    """Guards the step comparison: a step that left a weight within the tolerance would make its check vacuous."""
    initial = torch.load(reference_dir / "initial.pt")
    stepped = reference["params_after_step"]
    moved = [_relative_error(initial[name], stepped[name]) for name in initial]
    assert min(moved) > 5e-5
    assert reference["grad_norm"] > 2 * CLIP_GRAD  # clipping is active: the norm across ranks scales the update


def test_rng_tracker_seeds_each_tensor_parallel_rank(layout_ranks):
    for result in layout_ranks:
        tp_rank = result["layout"].tensor_parallel_rank
        expected_forked = torch.rand(4, generator=torch.Generator().manual_seed(SEED + 2718 + tp_rank))
        assert torch.equal(result["rng"]["model_parallel"], expected_forked)
        expected_default = torch.rand(4, generator=torch.Generator().manual_seed(SEED))
        assert torch.equal(result["rng"]["default_after_fork"], expected_default)


def test_cuda_placements_land_on_cpu_in_the_installing_thread_only(reference):
    observed = reference["runtime"]
    for key in ("factory_device", "indexed_factory_device", "dot_cuda_device", "to_cuda_device", "to_index_device"):
        assert observed[key] == "cpu", key
    assert observed["type_name"] == "torch.cuda.FloatTensor"
    assert observed["type_name_double"] == "torch.cuda.DoubleTensor"
    assert observed["current_device"] == 0
    assert observed["cuda_is_available"] is False  # torch code choosing a CUDA path must take its CPU one
    assert observed["fork_worker"] == "cpu"  # a forked DataLoader worker copies the installing thread
    assert observed["other_thread"] == ("cuda" if torch.cuda.is_available() else "error: RuntimeError")
