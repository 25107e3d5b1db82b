"""One rank's random-number state: captured into a checkpoint, restored on resume, or reseeded when it cannot be.

Dropout draws from two generators per rank: the default one (replicated regions) and megatron's tensor-parallel RNG
tracker (its "model-parallel-rng" state differs per tensor-parallel rank, so each rank drops different columns of its
shard). Python's and numpy's generators are kept too, for any code that draws from them. The state is plain tensors,
ints and tuples, so a checkpoint file holding it loads with `torch.load(weights_only=True)`.

A rank's state belongs to its place in the layout: when a run resumes under another tensor/pipeline layout, no rank
has a counterpart in the old one, so the states are not restored but reseeded from (run seed + step); see
`reseed_rng`.
"""
from __future__ import annotations

import random

import numpy as np
import torch

from megatron_qwen_audio.runtime.cpu import cpu_runtime_installed


def _uses_real_cuda() -> bool:
    """Whether this rank computes on a GPU; under the CPU runtime layer the "CUDA" generator is the CPU one."""
    return torch.cuda.is_available() and torch.cuda.is_initialized() and not cpu_runtime_installed()


def capture_rng_state() -> dict:
    """Every generator dropout or the training code may draw from, as tensors and plain values (weights_only-safe)."""
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    name, key, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": name, "key": torch.from_numpy(key.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
        "tracker": {tracker_name: tracker_state.clone()
                    for tracker_name, tracker_state in get_cuda_rng_tracker().get_states().items()},
    }
    if _uses_real_cuda():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict) -> None:
    """Put back what `capture_rng_state` returned on the same rank of the same layout.

    A state captured on a GPU and restored under the CPU runtime (or the reverse) has no matching CUDA generator; that
    part is then left as seeded.
    """
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    python_version, python_key, python_gauss = state["python"]
    random.setstate((python_version, tuple(python_key), python_gauss))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["key"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and _uses_real_cuda():
        torch.cuda.set_rng_state(state["cuda"])
    get_cuda_rng_tracker().set_states({name: tracker_state.clone() for name, tracker_state in state["tracker"].items()})


def reseed_rng(seed: int) -> None:
    """Seed every generator the way `initialize_parallel` does (plus python's and numpy's), from `seed`.

    Used when a checkpoint's per-rank states cannot be restored (another layout): seeding from (run seed + step)
    rather than the run seed alone keeps a resumed run from replaying the dropout masks of its first steps, and keeps
    it reproducible.
    """
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    model_parallel_cuda_manual_seed(seed)
