"""Stop cleanly when the scheduler asks: SIGTERM (preemption, `scancel`) or SIGUSR1 (SLURM's `--signal=B:USR1@T`
warning before the time limit) make the run save a checkpoint and exit.

The handler only sets a flag: a signal can arrive anywhere, in the middle of a collective or an optimizer step, and
saving from there would hang or write a torn state. The training loop asks `should_save_and_exit()` once per step,
at a point where every rank is between steps. The signal often reaches the ranks at different times (or only some of
them: SLURM signals the batch shell, which forwards it), so the ranks take the maximum of their flags in an
all-reduce: all of them stop after the same step, and the checkpoint they then save together is consistent.
"""
from __future__ import annotations

import signal
from collections.abc import Sequence
from types import FrameType
from typing import Self

import torch
import torch.distributed as dist

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class PreemptionFlag:
    """Installs handlers for `signals` (main thread only) that record the signal; `restore()` puts the previous
    handlers back. Usable as a context manager."""

    def __init__(self, signals: Sequence[signal.Signals] = PREEMPTION_SIGNALS) -> None:
        self._received: signal.Signals | None = None
        self._previous = {signum: signal.signal(signum, self._handle) for signum in signals}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._received = signal.Signals(signum)

    @property
    def received(self) -> signal.Signals | None:
        """The signal this process got (the last one, when several), or None; local, no communication."""
        return self._received

    def should_save_and_exit(self, group: dist.ProcessGroup | None = None) -> bool:
        """Whether any rank of `group` (default: all) has received a signal. A collective: every rank of the group
        must call it at the same point of every step."""
        local = self._received is not None
        if not dist.is_initialized():
            return local
        flag = torch.tensor([int(local)], dtype=torch.int32, device=_collective_device(group))
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
        return bool(flag.item())

    def restore(self) -> None:
        """Reinstate the handlers that were there before."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore()


def _collective_device(group: dist.ProcessGroup | None) -> torch.device:
    """NCCL reduces only GPU tensors; gloo (the CPU runtime) only CPU ones."""
    if dist.get_backend(group) == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
