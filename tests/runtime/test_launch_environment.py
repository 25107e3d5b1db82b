"""Launcher variables -> process layout, and layouts that cannot tile the world, refused before any rendezvous."""
import pytest
import torch.distributed as dist

from megatron_qwen_audio.runtime.cpu import cpu_runtime_installed
from megatron_qwen_audio.runtime.parallel import (
    LaunchEnvironment,
    data_parallel_size,
    initialize_parallel,
    launch_environment,
)

TORCHRUN = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}
SRUN = {"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "MASTER_ADDR": "gpu-a1", "MASTER_PORT": "6000"}


def test_torchrun_and_deepspeed_variables():
    assert launch_environment(TORCHRUN) == LaunchEnvironment(3, 8, 1, "node0", 29500)


def test_srun_variables_map_to_rank_world_and_local_rank():
    assert launch_environment(SRUN) == LaunchEnvironment(5, 16, 1, "gpu-a1", 6000)


def test_torch_variables_win_over_slurm_ones():
    """A torchrun or deepspeed launch inside a SLURM allocation: the launcher's own numbering is the real one."""
    assert launch_environment(SRUN | TORCHRUN) == LaunchEnvironment(3, 8, 1, "node0", 29500)


def test_no_launcher_is_one_process():
    assert launch_environment({}) == LaunchEnvironment(0, 1, 0, None, None)


def test_missing_master_address_names_the_variable():
    environ = {name: value for name, value in SRUN.items() if name != "MASTER_ADDR"}
    with pytest.raises(ValueError, match="MASTER_ADDR is not set for a 16-process launch"):
        launch_environment(environ)


def test_missing_or_malformed_variables_are_named():
    with pytest.raises(ValueError, match="environment variable WORLD_SIZE is not set"):
        launch_environment({"RANK": "0", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="environment variable SLURM_NTASKS='4x' is not an integer"):
        launch_environment(SRUN | {"SLURM_NTASKS": "4x"})
    with pytest.raises(ValueError, match=r"RANK=8 is outside 0..WORLD_SIZE-1 \(8\)"):
        launch_environment(TORCHRUN | {"RANK": "8"})


def test_data_parallel_size_is_what_tensor_and_pipeline_leave():
    assert data_parallel_size(16, 2, 4) == 2
    assert data_parallel_size(8, 1, 1) == 8
    with pytest.raises(ValueError, match=r"must both be >= 1"):
        data_parallel_size(8, 0, 1)


def test_indivisible_world_is_refused_before_joining(monkeypatch):
    for name, value in (TORCHRUN | {"WORLD_SIZE": "6", "RANK": "0"}).items():
        monkeypatch.setenv(name, value)
    joined_before, installed_before = dist.is_initialized(), cpu_runtime_installed()
    with pytest.raises(ValueError, match=r"world size 6 is not divisible by .* = 2 x 2 = 4") as raised:
        initialize_parallel(tensor_parallel=2, pipeline_parallel=2, device="cpu", seed=0)
    assert "\n" not in str(raised.value)
    # refused before the rendezvous (nobody waits for the missing ranks) and before redirecting CUDA
    assert (dist.is_initialized(), cpu_runtime_installed()) == (joined_before, installed_before)
