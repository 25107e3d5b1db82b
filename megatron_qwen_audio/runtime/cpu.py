"""Device selection, and the layer that lets megatron-core's CUDA-only code run unchanged on CPU.

megatron-core has no CPU path: its schedules, pipeline communication, DDP buffers, distributed optimizer, grad
clipping and RNG tracker create tensors on `"cuda"`, ask `torch.cuda` for devices, streams and RNG states, and check
`Tensor.type()` strings. Rather than fork those call sites, `install_cpu_runtime()` redirects CUDA to CPU for the
whole process, so the very code that trains on GPUs is what the CPU tests exercise under gloo.

The redirection has three parts, each with a different reach:
- a `TorchFunctionMode` entered once and never left. Torch function modes live on a per-thread stack, so it covers
  only the thread that called `install_cpu_runtime()` (normally the main thread, which runs the training step).
  Other threads (a DataLoader pin-memory thread, a prefetch thread) do not see it: a `device="cuda"` there means
  the real GPU, or fails where there is none. DataLoader worker processes started with `fork` (the Linux default)
  copy the forking thread and so keep the mode; workers started with `spawn`/`forkserver` are fresh interpreters
  without any of this layer. Loader code must therefore produce CPU tensors and leave the move to the device to the
  training thread, which is what it should do on GPUs too.
- stubs on the `torch.cuda` module (devices, streams, events, NVTX) and CUDA RNG functions mapped to the CPU
  generator: module attributes, so they hold in every thread of the process and in forked children.
- megatron's `tensor_parallel.random._lazy_call` made eager. torch queues `_lazy_call` callbacks until CUDA is
  initialised, which never happens on CPU, so without this the RNG tracker silently never sets a state and dropout is
  not reproducible per tensor-parallel rank. The tracker's warning that the CPU generator moved inside a fork is
  dropped: here the "CUDA" generator is the CPU one, so it always moves.

`select_device` reads `torch.cuda.is_available()` before anything is installed, so it sees the real machine. Once
installed, `is_available()` answers False: the run uses no CUDA, and torch code that picks a CUDA path when it is
True (Adam's fused/foreach choice, or torch's own check when PYTORCH_NVML_BASED_CUDA_CHECK=1, as the DeepSpeed
launcher sets, consults the stand-in device count) must take its CPU path.
"""
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

DEVICE_CHOICES = ("cuda", "cpu", "auto")
_CPU = torch.device("cpu")

_installed_mode: TorchFunctionMode | None = None


def select_device(requested: str) -> str:
    """Resolve a config's `device` ("cuda" | "cpu" | "auto") to "cuda" or "cpu".

    Called before anything is redirected, so it sees the real machine. "auto" falls back to CPU only when no CUDA
    device is usable; asking for "cuda" without one is an error rather than a silent, very slow CPU run.
    """
    if requested not in DEVICE_CHOICES:
        raise ValueError(f"device: {requested!r} is not one of {', '.join(DEVICE_CHOICES)}; fix the config's device")
    if requested == "cpu":
        return "cpu"
    has_gpu = torch.cuda.is_available()
    if requested == "cuda" and not has_gpu:
        raise RuntimeError(
            "device: cuda was requested but torch.cuda.is_available() is False (no GPU or no working CUDA driver);"
            " run on a GPU machine or set device: cpu (or auto)"
        )
    return "cuda" if has_gpu else "cpu"


def install_cpu_runtime() -> None:
    """Redirect CUDA to CPU for this process (see the module docstring for the reach of each part). Idempotent.

    Must run before megatron-core builds process groups, models or optimizers, in the thread that will run them.
    """
    global _installed_mode
    if _installed_mode is not None:
        return
    _stub_cuda_module()
    _map_cuda_rng_to_cpu()
    _adapt_megatron_rng_tracker()
    mode = _CudaToCpuMode()
    mode.__enter__()
    _installed_mode = mode


def cpu_runtime_installed() -> bool:
    """Whether `install_cpu_runtime()` has run in this process."""
    return _installed_mode is not None


def _is_cuda_device(device: Any) -> bool:
    """Whether a `device=` value names a CUDA device: "cuda", "cuda:N", torch.device("cuda", N), or a bare index."""
    if isinstance(device, bool):
        return False
    if isinstance(device, int):
        return True
    if isinstance(device, str):
        return device == "cuda" or device.startswith("cuda:")
    return isinstance(device, torch.device) and device.type == "cuda"


class _CudaToCpuMode(TorchFunctionMode):
    """Rewrites CUDA placements to CPU on every torch call made by the thread that entered it."""

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if _is_cuda_device(kwargs.get("device")):
            kwargs["device"] = _CPU
        if func is torch.Tensor.cuda:
            return args[0]
        if func is torch.Tensor.to and len(args) > 1 and _is_cuda_device(args[1]):
            args = (args[0], _CPU, *args[2:])
        if func is torch.Tensor.type and len(args) == 1 and not kwargs:
            return _cuda_type_name(func(*args))
        return func(*args, **kwargs)


def _cuda_type_name(cpu_type_name: str) -> str:
    """'torch.FloatTensor' -> 'torch.cuda.FloatTensor': megatron's optimizers accept only the CUDA names."""
    prefix = "torch."
    assert cpu_type_name.startswith(prefix), cpu_type_name
    return prefix + "cuda." + cpu_type_name[len(prefix):]


class _InertStream:
    """Stands in for `torch.cuda.Stream`: on CPU every op runs in program order, so ordering has nothing to do."""

    def __init__(self, device: Any = None, priority: int = 0) -> None:
        self.device = _CPU

    def wait_stream(self, stream: "_InertStream") -> None:
        pass

    def wait_event(self, event: "_InertEvent") -> None:
        pass

    def record_event(self, event: "_InertEvent | None" = None) -> "_InertEvent":
        return event if event is not None else _InertEvent()

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True


class _InertEvent:
    """Stands in for `torch.cuda.Event` for ordering; it has no timing, so `elapsed_time` is deliberately absent."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False) -> None:
        pass

    def record(self, stream: _InertStream | None = None) -> None:
        pass

    def wait(self, stream: _InertStream | None = None) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True


_DEFAULT_STREAM = _InertStream()


def _new_no_op() -> Callable[..., None]:
    """A fresh do-nothing function per stub: torch.compile keys its rules by function object and refuses one object
    standing for several torch.cuda functions."""

    def no_op(*args: Any, **kwargs: Any) -> None:
        return None

    return no_op


def _stub_cuda_module() -> None:
    """One device (index 0) that needs no synchronisation, no memory management and no profiler ranges."""
    cuda = torch.cuda
    cuda.is_available = lambda: False
    cuda.current_device = lambda: 0
    cuda.device_count = lambda: 1
    cuda.synchronize = _new_no_op()
    cuda.set_device = _new_no_op()
    cuda.empty_cache = _new_no_op()
    cuda.Stream = _InertStream
    cuda.Event = _InertEvent
    cuda.current_stream = lambda device=None: _DEFAULT_STREAM
    cuda.default_stream = lambda device=None: _DEFAULT_STREAM
    cuda.stream = lambda stream=None: contextlib.nullcontext()
    cuda.nvtx.range_push = _new_no_op()
    cuda.nvtx.range_pop = _new_no_op()


def _seed_cpu_generator(seed: int) -> None:
    # Not torch.manual_seed: that calls torch.cuda.manual_seed_all, which is this function once installed.
    torch.default_generator.manual_seed(int(seed))


def _map_cuda_rng_to_cpu() -> None:
    """The "CUDA" generator becomes the CPU default generator, so megatron's RNG tracker forks and restores real state.

    Both `torch.cuda.X` and `torch.cuda.random.X` are replaced: megatron calls the latter directly.
    """
    replacements = {
        "get_rng_state": lambda device="cuda": torch.get_rng_state(),
        "set_rng_state": lambda new_state, device="cuda": torch.set_rng_state(new_state),
        "manual_seed": lambda seed: _seed_cpu_generator(seed),
        "manual_seed_all": lambda seed: _seed_cpu_generator(seed),
    }
    for name, replacement in replacements.items():
        setattr(torch.cuda, name, replacement)
        setattr(torch.cuda.random, name, replacement)
    torch.cuda.default_generators = (torch.default_generator,)


class _DropSharedGeneratorWarning(logging.Filter):
    """megatron's RNG tracker warns when the CPU generator moves inside a "GPU" fork; here the two are one generator,
    so it would warn on every forked draw (every dropout in a tensor-parallel region) about nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "CPU RNG state changed within GPU RNG context"


def _adapt_megatron_rng_tracker() -> None:
    from megatron.core.tensor_parallel import random as megatron_random

    megatron_random._lazy_call = lambda callback: callback()
    logging.getLogger(megatron_random.__name__).addFilter(_DropSharedGeneratorWarning())
