"""Fixtures of the training tests: shard-set folders that satisfy validate() and a valid tiny config around them."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from empty_shard_sets import write_empty_shard_set


@pytest.fixture
def write_yaml(tmp_path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path
    return write


@pytest.fixture
def valid_config_file(tmp_path, write_yaml) -> Path:
    """A tiny CPU run over two local shard sets that passes validate() at world sizes 1 and 2."""
    train = write_empty_shard_set(tmp_path / "shards" / "train")
    heldout = write_empty_shard_set(tmp_path / "shards" / "heldout")
    return write_yaml("valid.yaml", f"""\
steps: 4
eval_interval: 2
model:
  preset: tiny
parallel:
  device: cpu
  precision: fp32
data:
  train:
    - path_or_url: {train}
  heldout:
    - path_or_url: {heldout}
optimizer:
  lr: 1e-3
  min_lr: 1e-4
  warmup_steps: 1
stage:
  name: stage1_pretrain
  trainable: ["audio_encoder.*"]
  frozen: ["embedding.*", "decoder.*", "output_layer.*"]
""")
