"""The YAML files shipped in configs/: each loads, validates for the world sizes it is written for, states the
layout its comments justify, and its stage patterns claim every parameter of a model with the real top-level names.
The GPU demo's stages are the CPU demo's with another model, device, batch budget and schedule, and nothing else."""
from __future__ import annotations

import dataclasses
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


DEMO_STAGES = ("copy_pretrain", "text_pretrain", "stage1", "stage2")


def _recipe_of(config: TrainConfig) -> TrainConfig:
    """What the GPU demo must share with the CPU demo: the config without its run directories, model, device, batch
    budget and schedule."""
    loader = dataclasses.replace(config.data.loader, workers=0, max_batch_tokens=1, max_batch_frames=1,
                                 max_batch_samples=1)
    return dataclasses.replace(
        config, run_dir="", init_from=None, model=None, parallel=None, steps=0, exit_duration_minutes=None,
        eval_interval=0, save_interval=0,
        optimizer=dataclasses.replace(config.optimizer, lr=0.0, min_lr=0.0, warmup_steps=0),
        data=dataclasses.replace(config.data, loader=loader))


@pytest.mark.parametrize("stage", DEMO_STAGES)
def test_gpu_demo_stage_is_the_cpu_demo_stage_with_a_larger_model_on_one_gpu(stage, tmp_path, monkeypatch):
    cpu = load_config(REPO_CONFIGS / "demo" / f"{stage}.yaml")
    gpu = load_config(REPO_CONFIGS / "demo_gpu" / f"{stage}.yaml")
    assert _recipe_of(gpu) == _recipe_of(cpu)  # same data, tasks, stage masks, loss averaging, seeds, SpecAugment
    assert gpu.run_dir == cpu.run_dir.replace("runs/demo/", "runs/demo_gpu/")
    assert gpu.init_from == (cpu.init_from and cpu.init_from.replace("runs/demo/", "runs/demo_gpu/"))
    assert gpu.model.hidden_size > cpu.model.hidden_size and gpu.model.layers > cpu.model.layers
    assert gpu.model.audio_encoder.d_model > cpu.model.audio_encoder.d_model
    assert (gpu.parallel.device, gpu.parallel.precision, gpu.parallel.tensor_parallel) == ("cuda", "bf16", 1)
    monkeypatch.chdir(tmp_path)
    with_its_shard_sets(gpu, tmp_path)
    validate(gpu, 1)


def test_gpu_demo_training_is_bounded_to_about_five_minutes():
    minutes = [load_config(REPO_CONFIGS / "demo_gpu" / f"{stage}.yaml").exit_duration_minutes for stage in DEMO_STAGES]
    assert all(minutes) and sum(minutes) <= 5
