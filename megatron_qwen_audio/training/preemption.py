"""Stop cleanly when the scheduler asks: SIGTERM (preemption, `scancel`) or SIGUSR1 (SLURM's `--signal=B:USR1@T`
warning before the time limit) make the run save a checkpoint and exit.

The handler only sets a flag: a signal can arrive anywhere, in the middle of a collective or an optimizer step, and
saving from there would hang or write a torn state. The training loop asks `should_save_and_exit()` once per step,
at a point where every rank is between steps. The signal often reaches the ranks at different times (or only some of
them: SLURM signals the batch shell, which forwards it), so the ranks take the maximum of their flags in an
all-reduce: all of them stop after the same step, and the checkpoint they then save together is consistent.

A deadline (the trainer's `exit_duration_minutes`) raises the same flag when the clock passes it, so a run that must
end before its allocation does stops the same way: every rank after the same step, with a checkpoint.
"""
from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from types import FrameType
from typing import Self

import torch
import torch.distributed as dist

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class PreemptionFlag:
    """Installs handlers for `signals` (main thread only) that record the signal; `restore()` puts the previous
    handlers back. Usable as a context manager. Past `deadline` (a `time.monotonic()` value), if given, the flag is
    raised without a signal."""

    def __init__(self, signals: Sequence[signal.Signals] = PREEMPTION_SIGNALS, deadline: float | None = None) -> None:
        self._received: signal.Signals | None = None
        self._deadline = deadline
        self._previous = {signum: signal.signal(signum, self._handle) for signum in signals}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._received = signal.Signals(signum)

    @property
    def received(self) -> signal.Signals | None:
        """The signal this process got (the last one, when several), or None; local, no communication."""
        return self._received

    @property
    def past_deadline(self) -> bool:
        """Whether this process's clock has passed the deadline; local, no communication."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def should_save_and_exit(self, group: dist.ProcessGroup | None = None) -> bool:
        """Whether any rank of `group` (default: all) has received a signal or passed the deadline. A collective:
        every rank of the group must call it at the same point of every step."""
        local = self._received is not None or self.past_deadline
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
