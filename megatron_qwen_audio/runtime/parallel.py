"""Process groups: from the launcher's environment to megatron-core's tensor/pipeline/data-parallel layout.

Every launcher the project supports ends up here with a different set of variables: torchrun and the DeepSpeed
launcher export RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; `srun` exports only SLURM_PROCID /
SLURM_NTASKS / SLURM_LOCALID (the job script exports MASTER_ADDR / MASTER_PORT). `launch_environment` turns either
into one record, and `initialize_parallel` builds the process groups from it, so training code never reads the
environment itself.
"""
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from megatron_qwen_audio.runtime.cpu import install_cpu_runtime, select_device

_TORCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
_SLURM_VARIABLES = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")


@dataclass(frozen=True)
class LaunchEnvironment:
    """Where this process sits among those the launcher started."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str | None
    master_port: int | None


@dataclass(frozen=True)
class ParallelLayout:
    """This process's place in the megatron-core layout (world = tensor x pipeline x data parallel)."""

    rank: int
    world_size: int
    local_rank: int
    tensor_parallel: int
    pipeline_parallel: int
    data_parallel: int
    tensor_parallel_rank: int
    pipeline_parallel_rank: int
    data_parallel_rank: int
    device: str

    @property
    def is_first_stage(self) -> bool:
        return self.pipeline_parallel_rank == 0

    @property
    def is_last_stage(self) -> bool:
        return self.pipeline_parallel_rank == self.pipeline_parallel - 1


def launch_environment(environ: Mapping[str, str]) -> LaunchEnvironment:
    """Read the launcher's variables: torch's names first, SLURM's when RANK is absent, one process when neither.

    MASTER_ADDR / MASTER_PORT are required only when there is more than one process.
    """
    if "RANK" in environ:
        names = _TORCH_VARIABLES
    elif "SLURM_PROCID" in environ:
        names = _SLURM_VARIABLES
    else:
        return LaunchEnvironment(rank=0, world_size=1, local_rank=0, master_addr=None, master_port=None)
    rank, world_size, local_rank = (_int_variable(environ, name) for name in names)
    if not 0 <= rank < world_size:
        raise ValueError(f"{names[0]}={rank} is outside 0..{names[1]}-1 ({world_size}); check the launcher's settings")
    if world_size == 1:
        return LaunchEnvironment(rank=rank, world_size=1, local_rank=local_rank, master_addr=None, master_port=None)
    if "MASTER_ADDR" not in environ:
        raise ValueError(
            f"MASTER_ADDR is not set for a {world_size}-process launch; export the host name of rank 0 (under srun:"
            " the first host of the job's node list) in the launch script"
        )
    return LaunchEnvironment(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        master_addr=environ["MASTER_ADDR"],
        master_port=_int_variable(environ, "MASTER_PORT"),
    )


def _int_variable(environ: Mapping[str, str], name: str) -> int:
    if name not in environ:
        raise ValueError(f"environment variable {name} is not set; the launcher must export it with the other ranks'")
    try:
        return int(environ[name])
    except ValueError:
        raise ValueError(f"environment variable {name}={environ[name]!r} is not an integer") from None


def data_parallel_size(world_size: int, tensor_parallel: int, pipeline_parallel: int) -> int:
    """world / (tensor x pipeline), refusing layouts that do not tile the world."""
    if tensor_parallel < 1 or pipeline_parallel < 1:
        raise ValueError(
            f"tensor_parallel={tensor_parallel} and pipeline_parallel={pipeline_parallel} must both be >= 1"
        )
    model_parallel = tensor_parallel * pipeline_parallel
    if world_size % model_parallel:
        raise ValueError(
            f"world size {world_size} is not divisible by tensor_parallel x pipeline_parallel = {tensor_parallel} x"
            f" {pipeline_parallel} = {model_parallel}; launch a multiple of {model_parallel} processes or change the"
            " parallel sizes"
        )
    return world_size // model_parallel


def initialize_parallel(tensor_parallel: int, pipeline_parallel: int, device: str, seed: int) -> ParallelLayout:
    """Join the launcher's processes and set up megatron-core's parallel state and RNG tracker.

    `device` is the config's choice ("cuda" | "cpu" | "auto"); on CPU the CUDA->CPU runtime layer is installed first
    and the backend is gloo, on GPU this process takes GPU LOCAL_RANK and the backend is nccl. An existing default
    process group is reused, so a process may rebuild megatron's layout after `destroy_model_parallel()`.
    """
    launch = launch_environment(os.environ)
    data_parallel = data_parallel_size(launch.world_size, tensor_parallel, pipeline_parallel)
    resolved_device = select_device(device)
    # imported only now: a bad layout or device is refused before megatron's multi-second import
    from megatron.core import parallel_state
    from megatron.core import tensor_parallel as megatron_tensor_parallel

    if resolved_device == "cpu":
        install_cpu_runtime()
    else:
        _take_local_gpu(launch.local_rank)
    if not dist.is_initialized():
        _init_process_group(launch, backend="gloo" if resolved_device == "cpu" else "nccl")
    if dist.get_world_size() != launch.world_size:
        raise RuntimeError(
            f"the existing process group has {dist.get_world_size()} processes but the launcher reports"
            f" {launch.world_size}; destroy it before initializing another layout"
        )
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=tensor_parallel, pipeline_model_parallel_size=pipeline_parallel
    )
    torch.manual_seed(seed)
    megatron_tensor_parallel.model_parallel_cuda_manual_seed(seed)
    return ParallelLayout(
        rank=launch.rank,
        world_size=launch.world_size,
        local_rank=launch.local_rank,
        tensor_parallel=tensor_parallel,
        pipeline_parallel=pipeline_parallel,
        data_parallel=data_parallel,
        tensor_parallel_rank=parallel_state.get_tensor_model_parallel_rank(),
        pipeline_parallel_rank=parallel_state.get_pipeline_model_parallel_rank(),
        data_parallel_rank=parallel_state.get_data_parallel_rank(),
        device=resolved_device,
    )


def ensure_single_process(seed: int = 0) -> None:
    """One CPU process's group and megatron state, unless a layout is already set up: what tools that build a model
    outside a launched run (the checkpoint converters, decoding) need, since megatron builds modules only inside one."""
    from megatron.core import parallel_state

    if not parallel_state.model_parallel_is_initialized():
        initialize_parallel(1, 1, device="cpu", seed=seed)


def shutdown_parallel() -> None:
    """Tear down megatron's groups, then wait for every rank and destroy the default group.

    gloo aborts a process that exits while a peer still talks to it, so every rank must end through here.
    """
    from megatron.core import parallel_state

    parallel_state.destroy_model_parallel()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _take_local_gpu(local_rank: int) -> None:
    gpus = torch.cuda.device_count()
    if local_rank >= gpus:
        raise RuntimeError(
            f"LOCAL_RANK={local_rank} but this node has {gpus} GPU(s); start at most {gpus} processes per node"
        )
    torch.cuda.set_device(local_rank)


def _init_process_group(launch: LaunchEnvironment, backend: str) -> None:
    """One process needs no rendezvous (an in-memory store); several meet at MASTER_ADDR:MASTER_PORT.

    Under SLURM the torch variables are exported from the SLURM ones, so libraries that read them (and torch's
    env:// rendezvous, which torchrun's agent store relies on) see the same layout.
    """
    if launch.world_size == 1:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        return
    exported = {
        "RANK": launch.rank,
        "WORLD_SIZE": launch.world_size,
        "LOCAL_RANK": launch.local_rank,
        "MASTER_ADDR": launch.master_addr,
        "MASTER_PORT": launch.master_port,
    }
    for name, value in exported.items():
        os.environ.setdefault(name, str(value))
    dist.init_process_group(backend, init_method="env://", rank=launch.rank, world_size=launch.world_size)
