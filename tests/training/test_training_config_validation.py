"""validate(): every check before the process groups start, each message with its numbers; and the layout helpers
(padded vocabulary, pipeline split, batch arithmetic) against hand-computed values."""
from __future__ import annotations

import re

import pytest

from megatron_qwen_audio.training.config import (
    ConfigError,
    ParallelConfig,
    batch_summary,
    data_parallel_size,
    load_config,
    padded_vocab,
    pipeline_stage_layers,
    validate,
)


def test_the_valid_config_passes_at_world_sizes_1_and_2(valid_config_file):
    config = load_config(valid_config_file)
    validate(config, 1)
    validate(config, 2)


@pytest.mark.parametrize("overrides, world_size, message", [
    ([], 0, "world size 0 must be at least 1"),
    (["parallel.tensor_parallel=2", "parallel.pipeline_parallel=2"], 6,
     "world size 6 is not divisible by tensor_parallel x pipeline_parallel = 2 x 2 = 4; start a multiple of 4 "
     "processes or change the layout"),
    (["parallel.tensor_parallel=0"], 1, "parallel.tensor_parallel=0 must be at least 1"),
    (["parallel.micro_batches_per_step=0"], 1, "parallel.micro_batches_per_step=0 must be at least 1"),
    (["parallel.tensor_parallel=3"], 3,
     "model.heads=4 is not divisible by parallel.tensor_parallel=3; each tensor-parallel rank must hold an equal "
     "share"),
    (["model.ffn_hidden_size=170", "parallel.tensor_parallel=4"], 4,
     "model.ffn_hidden_size=170 is not divisible by parallel.tensor_parallel=4"),
    (["model.hidden_size=66"], 1,
     "model.hidden_size=66 is not divisible by model.heads=4; choose a width that is a whole number of heads"),
    (["model.audio_encoder.output_dim=96"], 1,
     "model.audio_encoder.output_dim=96 differs from model.hidden_size=64; the projection feeds the decoder, so set "
     "them equal"),
    (["model.share_embeddings_and_output_weights=true"], 1,
     "model.share_embeddings_and_output_weights=true: tied embeddings are not supported (Qwen keeps a separate LM "
     "head); set it to false"),
    (["model.layers=5", "parallel.pipeline_parallel=2"], 2,
     "model.layers=5 is not divisible by parallel.pipeline_parallel=2; list an uneven split in parallel.stage_layers, "
     "e.g. [2, 3]"),
    (["model.layers=30", "parallel.pipeline_parallel=4"], 4, "e.g. [7, 7, 8, 8]"),
    (["parallel.pipeline_parallel=2", "parallel.stage_layers=[1, 1, 2]"], 2,
     "parallel.stage_layers=[1, 1, 2] has 3 entries for parallel.pipeline_parallel=2 stages"),
    (["parallel.pipeline_parallel=2", "parallel.stage_layers=[1, 2]"], 2,
     "parallel.stage_layers=[1, 2] sums to 3, not model.layers=4"),
    (["parallel.pipeline_parallel=2", "parallel.stage_layers=[0, 4]"], 2,
     "parallel.stage_layers=[0, 4]: every stage needs at least 1 decoder layer"),
    (["model.vocab_size=151936"], 1,
     "model.vocab_size=151936 is smaller than the tokenizer's 155165 ids; use at least 155165 (the released model has "
     "155947)"),
    (["model.audio_encoder.max_source_positions=1000"], 1,
     "model.audio_encoder.max_source_positions=1000 is below the 1500 encoder frames of a 3000-frame (30 s) clip"),
    (["model.layers=0"], 1, "model.layers=0 must be at least 1"),
    (["model.rms_norm_eps=0"], 1, "model.rotary_base=10000.0 and model.rms_norm_eps=0.0 must both be positive"),
    (["parallel.sequence_parallel=true"], 1, "parallel.sequence_parallel=true needs parallel.tensor_parallel > 1"),
    (["parallel.sequence_parallel=true", "parallel.tensor_parallel=2"], 2,
     "parallel.sequence_parallel=true needs Transformer Engine norms, which the CPU runtime lacks"),
    (["parallel.recompute=selective", "parallel.recompute_modules=[]"], 1,
     "parallel.recompute=selective with no parallel.recompute_modules recomputes nothing"),
    (["parallel.precision=bf16"], 1,
     "parallel.precision=bf16 with parallel.device=cpu: the CPU runtime computes in fp32; set parallel.precision=fp32"),
    (["steps=0"], 1, "steps=0 must be at least 1"),
    (["log_interval=0"], 1, "log_interval=0 must be at least 1"),
    (["eval_interval=-1"], 1, "eval_interval=-1 must be at least 0 (0 turns evaluation off)"),
    (["eval_steps=0"], 1, "eval_steps=0 must be at least 1"),
    (["keep_last=-1"], 1, "keep_last=-1 must be at least 0 (0 keeps every checkpoint)"),
    (["resume=''"], 1, "resume is empty; use auto, none or the path of a checkpoint"),
    (["wandb.mode=cloud"], 1, "wandb.mode='cloud' (from the config or $WANDB_MODE) must be one of online, offline, "
                              "disabled"),
    (["optimizer.lr=0", "optimizer.min_lr=0"], 1,
     "optimizer.lr=0.0 must be positive and optimizer.min_lr=0.0 non-negative"),
    (["optimizer.min_lr=0.01"], 1, "optimizer.min_lr=0.01 is above optimizer.lr=0.001; the schedule decays from lr "
                                   "down to min_lr, so set min_lr <= lr"),
    (["optimizer.warmup_steps=4"], 1,
     "optimizer.warmup_steps=4 leaves no decay before the last step (steps=4); use fewer warmup steps or "
     "optimizer.decay=constant"),
    (["optimizer.betas=[0.9, 1.0]"], 1, "optimizer.betas=[0.9, 1.0] must both lie in [0, 1)"),
    (["optimizer.eps=0"], 1, "optimizer.eps=0.0 must be positive"),
    (["optimizer.weight_decay=-0.1"], 1, "optimizer.weight_decay=-0.1 must be at least 0"),
    (["optimizer.clip_grad=-1"], 1, "optimizer.clip_grad=-1.0 must be at least 0 (0 turns clipping off)"),
    (["data.train=[]"], 1, "data.train lists no shard sets; add at least one {path_or_url: FOLDER}"),
    (["data.heldout=[]"], 1,
     "eval_interval=2 but data.heldout lists no shard sets; add held-out sets or set eval_interval=0"),
    (["data.train=[{path_or_url: nowhere/train}]"], 1,
     "data.train[0].path_or_url=nowhere/train: no index.json at nowhere/train/index.json (paths are relative to the "
     "directory the run starts in); build the shard set with mqa-build-shards or fix the path"),
    (["data.heldout=[{path_or_url: 'file:nowhere/heldout'}]"], 1,
     "data.heldout[0].path_or_url=file:nowhere/heldout: no index.json at nowhere/heldout/index.json"),
    (["data.train=[{path_or_url: x, weight: 0}]"], 1,
     "data.train[0].weight=0.0 must be positive (leave a set out to skip it)"),
])
def test_each_problem_is_one_line_with_its_numbers(valid_config_file, monkeypatch, tmp_path, overrides, world_size,
                                                    message):
    monkeypatch.chdir(tmp_path)  # relative shard paths resolve against the directory the run starts in
    config = load_config(valid_config_file, overrides)
    with pytest.raises(ConfigError) as error:
        validate(config, world_size)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("overrides, world_size", [
    (["eval_interval=0", "data.heldout=[]"], 1),  # no evaluation needs no held-out sets
    (["data.train=[{path_or_url: 's3://bucket/set', url_template: 'pipe:aws s3 cp {root}/{name} -'}]"], 1),  # remote
    (["data.train=[{path_or_url: 'https://host/set'}]"], 1),  # read when the loader opens it
    (["parallel.pipeline_parallel=2", "parallel.stage_layers=[1, 3]"], 4),  # uneven split, data parallel 2
    (["parallel.tensor_parallel=4", "parallel.pipeline_parallel=4"], 16),  # tiny splits up to TP=4 x PP=4
    (["parallel.device=auto", "parallel.precision=bf16"], 1),  # fp32 is forced only where the run lands on a CPU
    (["model.audio_encoder.heads=5", "model.audio_encoder.d_model=80", "parallel.tensor_parallel=2"], 2),
])
def test_valid_variations_pass(valid_config_file, overrides, world_size):
    validate(load_config(valid_config_file, overrides), world_size)


def test_encoder_heads_need_not_divide_the_tensor_parallel_size(valid_config_file):
    """The encoder is replicated over the tensor-parallel ranks (each encodes a share of the clips): Whisper's 20
    heads do not limit the decoder's TP=8."""
    config = load_config(valid_config_file, ["model.preset=qwen_audio_7b", "parallel.device=cuda",
                                             "parallel.tensor_parallel=8"])
    assert config.model.audio_encoder.heads % 8 != 0
    validate(config, 8)


def test_first_problem_in_a_local_heldout_path_is_reported_with_its_index(valid_config_file, tmp_path):
    config = load_config(valid_config_file,
                         [f"data.heldout=[{{path_or_url: {tmp_path / 'shards' / 'heldout'}}}, {{path_or_url: gone}}]"])
    with pytest.raises(ConfigError, match=re.escape("data.heldout[1].path_or_url=gone: no index.json")):
        validate(config, 1)


@pytest.mark.parametrize("vocab, tensor_parallel, expected", [
    (155947, 1, 156672),  # 153 x 1024: the same rows at TP 1, 2, 4 and 8, so checkpoints reshard across them
    (155947, 2, 156672),
    (155947, 4, 156672),
    (155947, 8, 156672),
    (155947, 16, 157696),  # 77 x 2048
    (156672, 1, 156672),  # already a multiple
    (1, 1, 1024),
])
def test_padded_vocab_rounds_up_to_equal_aligned_slices(vocab, tensor_parallel, expected):
    padded = padded_vocab(vocab, tensor_parallel)
    assert padded == expected
    assert (padded // tensor_parallel) % 128 == 0 and 0 <= padded - vocab < 128 * max(tensor_parallel, 8)


def test_padded_vocab_multiple_is_configurable():
    assert padded_vocab(155947, 2, multiple=1) == 155952  # 19494 x 8
    assert padded_vocab(155947, 1, multiple=64) == 156160  # 305 x 512


def test_pipeline_stage_layers_and_data_parallel_size(valid_config_file):
    even = load_config(valid_config_file, ["parallel.pipeline_parallel=2"])
    uneven = load_config(valid_config_file, ["parallel.pipeline_parallel=2", "parallel.stage_layers=[1, 3]"])
    assert pipeline_stage_layers(even.model, even.parallel) == (2, 2)
    assert pipeline_stage_layers(uneven.model, uneven.parallel) == (1, 3)
    assert data_parallel_size(ParallelConfig(tensor_parallel=2, pipeline_parallel=2), 8) == 2
    assert data_parallel_size(ParallelConfig(), 3) == 3


def test_batch_summary_prints_the_arithmetic(valid_config_file):
    config = load_config(valid_config_file, ["parallel.pipeline_parallel=2", "parallel.micro_batches_per_step=4",
                                             "data.loader.max_batch_tokens=1000", "data.loader.max_batch_samples=8",
                                             "data.loader.max_batch_frames=9000"])
    assert batch_summary(config, 6) == (
        "world size 6 = tensor 1 x pipeline 2 x data 3; one step = 3 data-parallel ranks x 4 micro-batches = 12 "
        "loader batches of <= 1,000 token positions, <= 8 samples, <= 9,000 mel frames: <= 12,000 token positions "
        "per step")


def test_precision_on_cpu_is_fp32():
    parallel = ParallelConfig(precision="bf16")
    assert parallel.resolved_precision("cpu") == "fp32"
    assert parallel.resolved_precision("cuda") == "bf16"
