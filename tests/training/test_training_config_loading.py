"""YAML + overrides -> TrainConfig: values land on the right fields with the right types, `base:` layering, presets,
and the one-line errors (file:line, key path, closest key, expected type)."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from megatron_qwen_audio.data.loader_config import LoaderConfig
from megatron_qwen_audio.data.shard_sets import ShardSetSpec
from megatron_qwen_audio.training.config import (
    MODEL_PRESETS,
    ConfigError,
    ModelConfig,
    OptimizerConfig,
    TrainConfig,
    dump_config,
    load_config,
)

RUN_YAML = """\
run_dir: runs/x
steps: 20
model:
  preset: tiny
  layers: 6
parallel:
  stage_layers: [2, 4]
  pipeline_parallel: 2
data:
  train:
    - path_or_url: sets/a
      weight: 3
    - path_or_url: s3://bucket/b
      url_template: "pipe:aws s3 cp {root}/{name} -"
      name: b
  loader:
    max_batch_tokens: 4096
    spec_augment:
      fill: floor
optimizer:
  lr: 1e-4
  betas: [0.9, 0.95]
stage:
  trainable: ["audio_encoder.*"]
  frozen: [embedding.*, decoder.*, output_layer.*]
"""


def test_yaml_and_overrides_land_on_typed_fields_and_round_trip(write_yaml, tmp_path):
    path = write_yaml("run.yaml", RUN_YAML)
    config = load_config(path, ["parallel.tensor_parallel=2", "model.audio_encoder.layers=3",
                                "optimizer.min_lr=2e-6", "data.loader.spec_augment.enabled=false",
                                "wandb.entity=team", "resume=none"])

    tiny = MODEL_PRESETS["tiny"]
    assert config.model == ModelConfig(
        layers=6, hidden_size=tiny.hidden_size, heads=tiny.heads, ffn_hidden_size=tiny.ffn_hidden_size,
        audio_encoder=replace(tiny.audio_encoder, layers=3))
    assert (config.parallel.tensor_parallel, config.parallel.pipeline_parallel) == (2, 2)
    assert config.parallel.stage_layers == (2, 4)
    assert config.data.train == (ShardSetSpec("sets/a", 3.0),
                                 ShardSetSpec("s3://bucket/b", 1.0, "pipe:aws s3 cp {root}/{name} -", "b"))
    assert isinstance(config.data.train[0].weight, float)
    assert config.data.loader.max_batch_tokens == 4096
    assert config.data.loader.max_batch_samples == LoaderConfig().max_batch_samples  # untouched default kept
    assert (config.data.loader.spec_augment.fill, config.data.loader.spec_augment.enabled) == ("floor", False)
    assert config.optimizer.lr == 1e-4 and isinstance(config.optimizer.lr, float)  # `1e-4`: a float, not a string
    assert config.optimizer.min_lr == 2e-6
    assert config.optimizer.betas == (0.9, 0.95)
    assert config.optimizer.warmup_steps == OptimizerConfig().warmup_steps
    assert config.stage.frozen == ("embedding.*", "decoder.*", "output_layer.*")
    assert (config.wandb.entity, config.resume, config.run_dir, config.steps) == ("team", "none", "runs/x", 20)

    dumped = write_yaml("dumped.yaml", dump_config(config))
    assert "preset" not in dumped.read_text()  # every key explicit
    assert load_config(dumped) == config


def test_no_keys_gives_the_dataclass_defaults(write_yaml):
    assert load_config(write_yaml("empty.yaml", "")) == TrainConfig()
    assert TrainConfig().model == MODEL_PRESETS["qwen_audio_7b"]


def test_base_file_is_read_first_relative_to_the_file_that_names_it(write_yaml):
    write_yaml("common/grandparent.yaml", "seed: 7\nsteps: 30\n")
    write_yaml("common/parent.yaml", """\
base: grandparent.yaml
steps: 40
model: {preset: tiny}
data:
  train: [{path_or_url: a}, {path_or_url: b}]
  loader: {workers: 0, max_batch_tokens: 2048}
stage: {name: stage1, trainable: ["audio_encoder.*"], frozen: ["decoder.*"]}
""")
    child = write_yaml("runs/child.yaml", """\
base: ../common/parent.yaml
model: {layers: 2}
data:
  train: [{path_or_url: c}]
  loader: {max_batch_tokens: 1024}
stage: {name: stage2}
""")
    config = load_config(child)
    assert (config.seed, config.steps) == (7, 40)  # grandparent, then parent over it
    assert config.model.layers == 2 and config.model.hidden_size == MODEL_PRESETS["tiny"].hidden_size
    assert config.data.train == (ShardSetSpec("c"),)  # a list replaces the base's list
    assert (config.data.loader.workers, config.data.loader.max_batch_tokens) == (0, 1024)  # mappings merge
    assert config.stage.name == "stage2" and config.stage.trainable == ("audio_encoder.*",)


def test_a_list_of_bases_merges_in_order_under_the_file(write_yaml, tmp_path):
    write_yaml("model.yaml", "steps: 30\nseed: 7\nmodel: {preset: tiny}\ndata: {loader: {workers: 0}}\n")
    write_yaml("mixture.yaml", "seed: 8\ndata:\n  train: [{path_or_url: a, weight: 0.25}, {path_or_url: b}]\n")
    child = write_yaml("run.yaml", "base: [model.yaml, mixture.yaml]\nsteps: 40\n")
    config = load_config(child)
    assert (config.steps, config.seed, config.data.loader.workers) == (40, 8, 0)  # file > later base > earlier
    assert config.data.train == (ShardSetSpec("a", weight=0.25), ShardSetSpec("b"))
    with pytest.raises(ConfigError, match=re.escape(f"{child.with_name('bad.yaml')}:1: `base:` must be the path of "
                                                    "another YAML file or a list of them, got [3]")):
        load_config(write_yaml("bad.yaml", "base: [3]\n"))


def test_base_cycle_and_missing_base_are_errors(write_yaml):
    write_yaml("a.yaml", "base: b.yaml\n")
    b = write_yaml("b.yaml", "base: a.yaml\n")
    cycle = r"b\.yaml: `base:` files form a cycle \(.*b\.yaml -> .*a\.yaml -> .*b\.yaml\)"
    with pytest.raises(ConfigError, match=cycle):
        load_config(b)
    lonely = write_yaml("lonely.yaml", "steps: 3\nbase: missing.yaml\n")
    with pytest.raises(ConfigError, match=re.escape(f"{lonely}:2: base file 'missing.yaml' not found")):
        load_config(lonely)


def test_unknown_key_names_file_line_key_path_and_closest_key(write_yaml):
    path = write_yaml("typo.yaml", "steps: 3\nmodel:\n  preset: tiny\n  layrs: 2\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}:4: unknown key 'model.layrs'; did you mean 'model.layers'?"


def test_unknown_key_without_a_close_match_lists_the_valid_keys(write_yaml):
    path = write_yaml("typo.yaml", "optimizer:\n  momentum: 0.9\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (f"{path}:2: unknown key 'optimizer.momentum'; valid keys in optimizer: lr, min_lr, "
                                "warmup_steps, decay, weight_decay, betas, eps, clip_grad")


def test_unknown_key_in_a_base_file_points_at_the_base_file(write_yaml):
    base = write_yaml("base.yaml", "parallel:\n  tensor_paralel: 2\n")
    child = write_yaml("child.yaml", "base: base.yaml\nsteps: 3\n")
    with pytest.raises(ConfigError, match=re.escape(f"{base}:2: unknown key 'parallel.tensor_paralel'; "
                                                    "did you mean 'parallel.tensor_parallel'?")):
        load_config(child)


def test_unknown_key_in_an_override_names_the_override(write_yaml):
    path = write_yaml("run.yaml", "steps: 3\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ["data.loader.max_batch_token=10"])
    assert str(error.value) == ("override 'data.loader.max_batch_token=10': unknown key "
                                "'data.loader.max_batch_token'; did you mean 'data.loader.max_batch_tokens'?")


def test_unknown_preset_suggests_the_closest(write_yaml):
    path = write_yaml("run.yaml", "model:\n  preset: tiyn\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (f"{path}:2: unknown model.preset 'tiyn'; did you mean 'tiny'? "
                                "presets: qwen_audio_7b, tiny")


@pytest.mark.parametrize("text, line, message", [
    ("steps: ten\n", 1, "steps must be an integer, got 'ten' (a string)"),
    ("steps: true\n", 1, "steps must be an integer, got True (true/false)"),
    ("steps: 2.5\n", 1, "steps must be an integer, got 2.5 (a number)"),
    ("parallel:\n  device: gpu\n", 2, "parallel.device must be one of 'auto', 'cuda', 'cpu', got 'gpu' (a string)"),
    ("parallel:\n  stage_layers: 12\n", 2, "parallel.stage_layers must be a list (each item an integer) or null, "
                                           "got 12 (an integer)"),
    ("optimizer:\n  betas: [0.9]\n", 2, "optimizer.betas must be a list of 2 values (a number, a number), got [0.9] "
                                        "(a list)"),
    ("model:\n  qkv_bias: 1\n", 2, "model.qkv_bias must be true or false, got 1 (an integer)"),
    ("model: 7b\n", 1, "model must be a mapping of ModelConfig keys, got '7b' (a string)"),
    ("data:\n  train:\n    - path_or_url: a\n    - path_or_url: b\n      weight: heavy\n", 5,
     "data.train[1].weight must be a number, got 'heavy' (a string)"),
    ("data:\n  train:\n    - weight: 2\n", 3, "data.train[0] needs the key(s) path_or_url"),
    ("wandb:\n  entity: [a, b]\n", 2, "wandb.entity must be a string or null, got ['a', 'b'] (a list)"),
])
def test_type_mismatch_names_the_line_key_and_expected_type(write_yaml, text, line, message):
    path = write_yaml("run.yaml", text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}:{line}: {message}"


def test_integers_are_accepted_where_numbers_are_expected(write_yaml):
    config = load_config(write_yaml("run.yaml", "optimizer:\n  lr: 1\n"))
    assert config.optimizer.lr == 1.0 and isinstance(config.optimizer.lr, float)


def test_checks_of_nested_library_dataclasses_are_reported_with_their_source(write_yaml):
    path = write_yaml("run.yaml", "steps: 3\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ["data.loader.max_batch_tokens=0"])
    assert str(error.value) == ("override 'data.loader.max_batch_tokens=0': data.loader: loader config: "
                                "max_batch_tokens=0 must be at least 1")
    with pytest.raises(ConfigError) as error:
        load_config(path, ["model.audio_encoder.d_model=66"])
    assert str(error.value) == ("override 'model.audio_encoder.d_model=66': model.audio_encoder: AudioEncoderConfig: "
                                "d_model 66 is not a multiple of heads 20")


def test_an_override_replacing_a_list_is_not_blamed_on_the_file(write_yaml):
    path = write_yaml("run.yaml", "data:\n  train:\n    - path_or_url: a\n      weight: 2\n")
    override = "data.train=[{path_or_url: b, weight: x}]"
    with pytest.raises(ConfigError, match=re.escape(f"override {override!r}: data.train[0].weight must be a number")):
        load_config(path, [override])


@pytest.mark.parametrize("override, message", [
    ("parallel.tensor_parallel", "override 'parallel.tensor_parallel': write it as key.path=value"),
    ("parallel..tensor_parallel=2", "override 'parallel..tensor_parallel=2': write it as key.path=value"),
    ("base=other.yaml", "override 'base=other.yaml': `base` can only be set inside a config file"),
    ("steps.every=2", "override 'steps.every=2': steps is 3, not a section with keys"),
    ("stage.trainable=[a", "override 'stage.trainable=[a': the value is not valid YAML"),
])
def test_malformed_overrides_are_errors(write_yaml, override, message):
    path = write_yaml("run.yaml", "steps: 3\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, [override])


def test_invalid_yaml_names_the_line(write_yaml):
    path = write_yaml("run.yaml", "steps: 3\nmodel:\n  layers: [1, 2\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:4: not valid YAML")):
        load_config(path)


def test_a_file_that_is_not_a_mapping_is_an_error(write_yaml):
    path = write_yaml("run.yaml", "- steps: 3\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: the file must be a mapping of config keys, not a list")):
        load_config(path)


def test_wandb_mode_defaults_to_offline_unless_wandb_mode_is_set(write_yaml, monkeypatch):
    path = write_yaml("run.yaml", "steps: 3\n")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert load_config(path).wandb.mode == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert load_config(path).wandb.mode == "disabled"
    assert load_config(path, ["wandb.mode=online"]).wandb.mode == "online"  # the config itself wins


def test_a_mapping_override_merges_into_its_section(write_yaml):
    path = write_yaml("run.yaml", "data:\n  loader:\n    workers: 0\n    max_batch_tokens: 2048\n")
    config = load_config(path, ["data.loader={max_batch_tokens: 1024, spec_augment: {enabled: false}}"])
    assert (config.data.loader.workers, config.data.loader.max_batch_tokens) == (0, 1024)
    assert not config.data.loader.spec_augment.enabled
