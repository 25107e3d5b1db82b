"""The YAML files shipped in configs/: each loads, validates for the world sizes it is written for, states the
layout its comments justify, and its stage patterns claim every parameter of a model with the real top-level names."""
from __future__ import annotations

from pathlib import Path

import pytest
from empty_shard_sets import write_empty_shard_set
from fake_qwen_audio_model import FakeQwenAudio

from megatron_qwen_audio.training.config import (
    MODEL_PRESETS,
    ConfigError,
    TrainConfig,
    data_parallel_size,
    load_config,
    pipeline_stage_layers,
    validate,
)
from megatron_qwen_audio.training.freeze import apply_freeze

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
WORLD_SIZES = {
    "tiny_stage1.yaml": (1, 2),
    "tiny_stage2.yaml": (1, 2),
    "qwen_audio_7b_stage1.yaml": (8,),
    "qwen_audio_7b_stage2_sft.yaml": (8,),
}


def test_every_shipped_config_is_covered():
    assert sorted(path.name for path in REPO_CONFIGS.glob("*.yaml")) == sorted(WORLD_SIZES)


def with_its_shard_sets(config: TrainConfig, root: Path) -> None:
    """Create (under the current directory `root`) an index for every set the config names by a relative path."""
    for spec in (*config.data.train, *config.data.heldout):
        assert not Path(spec.path_or_url).is_absolute(), "shipped configs name data relative to the repository"
        write_empty_shard_set(root / spec.path_or_url)


@pytest.mark.parametrize("name", sorted(WORLD_SIZES))
def test_config_validates_for_its_world_sizes_once_its_data_exists(name, tmp_path, monkeypatch):
    config = load_config(REPO_CONFIGS / name)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no index.json"):
        validate(config, WORLD_SIZES[name][0])
    with_its_shard_sets(config, tmp_path)
    for world_size in WORLD_SIZES[name]:
        validate(config, world_size)


def test_tiny_configs_run_the_tiny_model_on_cpu_over_the_demo_shards():
    stage1, stage2 = load_config(REPO_CONFIGS / "tiny_stage1.yaml"), load_config(REPO_CONFIGS / "tiny_stage2.yaml")
    for config in (stage1, stage2):
        assert config.model == MODEL_PRESETS["tiny"]
        assert (config.parallel.device, config.parallel.precision) == ("cpu", "fp32")
        assert [spec.path_or_url for spec in config.data.train] == ["runs/demo/shards/train"]
        assert [spec.path_or_url for spec in config.data.heldout] == ["runs/demo/shards/heldout"]
        assert config.steps <= 10
    assert stage2.init_from == stage1.run_dir != stage2.run_dir


def test_7b_configs_use_the_released_shape_on_tp2_pp2_dp2():
    stage1 = load_config(REPO_CONFIGS / "qwen_audio_7b_stage1.yaml")
    stage2 = load_config(REPO_CONFIGS / "qwen_audio_7b_stage2_sft.yaml")
    for config in (stage1, stage2):
        assert config.model == MODEL_PRESETS["qwen_audio_7b"]
        assert (config.parallel.tensor_parallel, config.parallel.pipeline_parallel) == (2, 2)
        assert data_parallel_size(config.parallel, 8) == 2
        assert config.parallel.precision == "bf16"
    assert pipeline_stage_layers(stage1.model, stage1.parallel) == (12, 20)
    assert pipeline_stage_layers(stage2.model, stage2.parallel) == (16, 16)
    assert stage2.init_from == stage1.run_dir


@pytest.mark.parametrize("name, trained", [
    ("tiny_stage1.yaml", {"audio_encoder"}),
    ("qwen_audio_7b_stage1.yaml", {"audio_encoder"}),
    ("tiny_stage2.yaml", {"embedding", "decoder", "output_layer"}),
    ("qwen_audio_7b_stage2_sft.yaml", {"embedding", "decoder", "output_layer"}),
])
def test_stage_patterns_train_what_the_recipe_says(name, trained):
    model = FakeQwenAudio()
    apply_freeze(model, load_config(REPO_CONFIGS / name).stage)
    for parameter_name, parameter in model.named_parameters():
        assert parameter.requires_grad == (parameter_name.split(".")[0] in trained), parameter_name
