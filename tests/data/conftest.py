"""Fixtures of the loader tests: small synthetic shard sets and the independent reference read of their tars."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import webdataset
from synthetic_shard_sets import SET_A_SHARDS, SET_B_SHARDS, write_shard_set

from megatron_qwen_audio.audio import SpecAugmentConfig
from megatron_qwen_audio.data.loader_config import LoaderConfig
from megatron_qwen_audio.data.shard_format import decode_npy


@pytest.fixture(scope="session")
def shard_sets(tmp_path_factory) -> dict[str, Path]:
    """Two sets built with the same tokenizer: "a" (8 shards, 85 samples) and "b" (5 shards, 50 samples)."""
    root = tmp_path_factory.mktemp("shard_sets")
    write_shard_set(root / "a", SET_A_SHARDS, seed=1)
    write_shard_set(root / "b", SET_B_SHARDS, seed=2)
    return {"a": root / "a", "b": root / "b"}


@pytest.fixture(scope="session")
def reference_samples(shard_sets) -> dict[str, dict[str, np.ndarray]]:
    """"<set>/<key>" -> decoded members, read with plain webdataset (not the loader's reader)."""
    samples = {}
    for name, directory in shard_sets.items():
        urls = [str(path) for path in sorted(directory.glob("*.tar"))]
        for sample in webdataset.WebDataset(urls, shardshuffle=False, empty_check=False):
            samples[f"{name}/{sample['__key__']}"] = {
                member: decode_npy(data) for member, data in sample.items() if member.endswith(".npy")
            }
    return samples


@pytest.fixture
def config() -> LoaderConfig:
    """A budget that cuts these sets into several batches per slot; SpecAugment off so mels compare exactly."""
    return LoaderConfig(seed=7, workers=2, max_batch_tokens=1200, max_batch_frames=2400, max_batch_samples=6,
                        shuffle_buffer=8, batching_pool=16, spec_augment=SpecAugmentConfig(enabled=False))
