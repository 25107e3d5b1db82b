"""The run configuration: every setting of a training run, documented on the dataclass field that defines it.

A run is one YAML file plus `key.path=value` overrides (`load_config`); the YAML files in `configs/` only override
these defaults. `validate(config, world_size)` then checks everything that can be checked before any process group
starts, with one-line messages that print the numbers.

Batch arithmetic. The loader cuts batches by a budget (data.loader.max_batch_tokens token positions, i.e. batch size
x longest sequence, or the summed sequences with data.loader.pack_sequences; max_batch_frames mel frames;
max_batch_samples samples), so a micro-batch is one loader batch and holds a varying number of samples:
    data_parallel        = world_size / (tensor_parallel x pipeline_parallel)
    loader batches/step  = data_parallel x micro_batches_per_step
    token positions/step <= data_parallel x micro_batches_per_step x max_batch_tokens
`batch_summary()` prints these numbers for a run.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlparse

import yaml

from megatron_qwen_audio.audio.lengths import MAX_MEL_FRAMES, encoder_frame_count
from megatron_qwen_audio.data.loader_config import LoaderConfig
from megatron_qwen_audio.data.shard_format import INDEX_FILE
from megatron_qwen_audio.data.shard_sets import ShardSetSpec
from megatron_qwen_audio.model.audio_encoder import AudioEncoderConfig
from megatron_qwen_audio.text.special_tokens import padded_vocab_size, special_tokens
from megatron_qwen_audio.training.config_yaml import (
    ConfigError,
    apply_override,
    build_dataclass,
    read_layered_yaml,
)

__all__ = [
    "ConfigError", "DataConfig", "MODEL_PRESETS", "ModelConfig", "OptimizerConfig",
    "ParallelConfig", "StageConfig", "TrainConfig", "WandbConfig", "batch_summary", "config_to_dict",
    "data_parallel_size", "dump_config", "load_config", "padded_vocab", "pipeline_stage_layers", "validate",
    "validate_model_layout",
]


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the combined model. Defaults: the released Qwen-Audio (Qwen-7B decoder + Whisper-large-v2 encoder).

    In YAML, `model.preset: NAME` starts from MODEL_PRESETS[NAME] instead of these defaults; the section's other keys
    override the preset.
    """

    layers: int = 32  # decoder transformer layers
    hidden_size: int = 4096  # decoder width
    heads: int = 32  # decoder attention heads, all with their own keys and values (head width 128)
    # SwiGLU width of each branch (gate and up); Qwen's HF config says 22016 = 2 x 11008, both branches together
    ffn_hidden_size: int = 11008
    # token ids the checkpoint knows: 155,947 for Qwen-Audio (the 155,165 ids of the tokenizer, padded). The model
    # allocates padded_vocab(vocab_size, tensor_parallel, vocab_pad_multiple) rows, so every tensor-parallel rank holds
    # an equal, aligned slice; rows past vocab_size are never a target
    vocab_size: int = field(default_factory=padded_vocab_size)
    vocab_pad_multiple: int = 128  # embedding rows per tensor-parallel rank are a multiple of this (GEMM alignment)
    rotary_base: float = 10000.0  # RoPE theta
    rms_norm_eps: float = 1e-5  # RMSNorm epsilon: Qwen-Audio's config (Qwen-7B alone used 1e-6)
    qkv_bias: bool = True  # Qwen's query/key/value projections have biases; no other decoder linear has one
    # Qwen keeps a separate LM head (untied); only false is supported (kept so configs and checkpoints that state it
    # still load)
    share_embeddings_and_output_weights: bool = False
    seq_length: int = 2048  # longest token sequence (audio spans included) the model is built and trained for
    audio_encoder: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)


MODEL_PRESETS: Mapping[str, ModelConfig] = MappingProxyType({
    "qwen_audio_7b": ModelConfig(),
    # CPU-sized, for tests and the demo: same code paths, layouts up to TP=4 / PP=4, and the real vocabulary so the
    # real tokenizer's ids fit (155,947 x 64 embedding and head: 20M parameters, cheap on CPU)
    "tiny": ModelConfig(
        layers=4, hidden_size=64, heads=4, ffn_hidden_size=176,
        audio_encoder=AudioEncoderConfig.tiny(output_dim=64),
    ),
})


LossAveraging = Literal["token", "sample"]


@dataclass(frozen=True)
class ParallelConfig:
    """How the model and the batches are spread over the processes (see the batch arithmetic in the module doc)."""

    tensor_parallel: int = 1  # ranks that split each decoder layer's weights (the encoder is replicated over them)
    pipeline_parallel: int = 1  # pipeline stages; stage 0 also holds the encoder and the embedding
    # decoder layers of each pipeline stage, e.g. [14, 18]: uneven so stage 0, which also runs the encoder, holds
    # fewer. Each stage needs at least one layer. Unset: model.layers split evenly
    stage_layers: tuple[int, ...] | None = None
    # loader batches each data-parallel rank accumulates before an optimizer step; with pipeline_parallel > 1 they
    # are also what fills the pipeline: its idle share is about (pipeline_parallel - 1) / micro_batches_per_step
    micro_batches_per_step: int = 1
    sequence_parallel: bool = False  # split norms/dropout activations over the TP ranks (needs TP > 1 and TE norms)
    # Activation recompute in the decoder layers, memory traded for compute (megatron's): "none" keeps every
    # activation for the backward pass; "selective" reruns the parts of each layer named in recompute_modules during
    # the backward pass ("mlp": the SwiGLU MLP, whose 2 x ffn-wide intermediates are most of a layer's activations;
    # "core_attn": the attention kernel, which flash attention already keeps linear in length; megatron-core's
    # "layernorm" recompute needs Transformer Engine, which the local spec does not use); "full" keeps only each
    # layer's input and reruns the whole layer (about a third more decoder compute)
    recompute: Literal["none", "selective", "full"] = "none"
    recompute_modules: tuple[Literal["mlp", "core_attn"], ...] = ("mlp",)
    device: Literal["auto", "cuda", "cpu"] = "auto"  # auto: CUDA when a GPU is visible, else the CPU runtime
    precision: Literal["bf16", "fp32"] = "bf16"  # compute precision on GPU; the CPU runtime always computes in fp32

    def resolved_precision(self, device_type: str) -> str:
        """The precision a run on `device_type` ("cuda" or "cpu", as the runtime resolved `device`) computes in."""
        return "fp32" if device_type == "cpu" else self.precision


@dataclass(frozen=True)
class DataConfig:
    """Where the samples come from. Paths are relative to the directory the run starts in (the repository root for
    the launch scripts). Each set is {path_or_url, weight, url_template, name}, documented on ShardSetSpec."""

    train: tuple[ShardSetSpec, ...] = ()  # shard sets mixed for training, each by its weight
    heldout: tuple[ShardSetSpec, ...] = ()  # shard sets read for evaluation (same loader settings, own plan)
    loader: LoaderConfig = field(default_factory=LoaderConfig)  # batching budget, workers, SpecAugment, seed


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW (the distributed optimizer accepts only Adam) with linear warmup, then decay to min_lr at the last step.
    Defaults are this project's starting point, not values from the paper."""

    lr: float = 5e-5  # peak learning rate, reached at the end of warmup
    min_lr: float = 1e-5  # learning rate at the last step
    warmup_steps: int = 2000  # linear warmup from 0 to lr
    decay: Literal["cosine", "linear", "constant"] = "cosine"  # shape from lr to min_lr after warmup
    weight_decay: float = 0.05  # decoupled (AdamW) weight decay
    betas: tuple[float, float] = (0.9, 0.98)  # Adam moment decay rates
    eps: float = 1e-6  # Adam denominator epsilon
    clip_grad: float = 1.0  # global gradient-norm clip; 0 turns clipping off


@dataclass(frozen=True)
class StageConfig:
    """What a training stage updates. Patterns are fnmatch globs over full dotted parameter names
    (`decoder.layers.3.mlp.linear_fc1.weight`; `*` also crosses dots) of the model's top-level modules
    `audio_encoder`, `embedding`, `decoder` and `output_layer`. Every parameter must match exactly one list
    (see training/freeze.py)."""

    name: str = "train"  # label in logs and messages, e.g. "stage1_pretrain"
    trainable: tuple[str, ...] = ()  # patterns of the parameters this stage updates
    frozen: tuple[str, ...] = ()  # patterns of the parameters it keeps fixed


WANDB_MODES = ("online", "offline", "disabled")


def _wandb_mode_from_environment() -> str:
    return os.environ.get("WANDB_MODE", "offline")


@dataclass(frozen=True)
class WandbConfig:
    """Weights & Biases logging (a local metrics file is written either way)."""

    project: str = "megatron-qwen-audio"  # wandb project
    entity: str | None = None  # wandb team or user; null: the account's default
    # "online", "offline" (synced later with `wandb sync`) or "disabled"; default: $WANDB_MODE if set, else offline,
    # so a run needs no network or account unless asked
    mode: str = field(default_factory=_wandb_mode_from_environment)


@dataclass(frozen=True)
class TrainConfig:
    """The root of a run's configuration."""

    run_dir: str = "runs/train"  # checkpoints, metrics, the resolved config and logs go here
    seed: int = 1234  # model initialisation and dropout (the loader has its own: data.loader.seed)
    steps: int = 1000  # optimizer steps of the run (the learning-rate schedule ends here)
    # the unit of the training loss's mean over the global batch: "token" (megatron's and HF's: every target token
    # weighs the same) or "sample" (every sample weighs the same, its tokens share its weight: a one-token task such
    # as language identification is not drowned by long transcripts). Held-out losses are always per token
    loss_averaging: LossAveraging = "token"
    log_interval: int = 10  # steps between metric lines
    eval_interval: int = 1000  # steps between held-out evaluations; 0 turns evaluation off
    eval_steps: int = 50  # loader batches per data-parallel rank in one evaluation
    save_interval: int = 1000  # steps between checkpoints (the last step is always saved)
    # minutes of training after which the run saves a checkpoint and stops, as after a preemption signal (Megatron-LM's
    # --exit-duration-in-mins): for a job that must end before its allocation does, or a time-boxed run. Counted from
    # the start of training in this process (after set-up and resume); `resume: auto` continues from that checkpoint.
    # null: no limit
    exit_duration_minutes: float | None = None
    keep_last: int = 3  # checkpoints kept in run_dir, older ones deleted; 0 keeps all
    # "auto": continue from the newest checkpoint in run_dir when there is one; "none": start anew even then;
    # otherwise the path of a checkpoint to continue from (weights, optimizer, loader position, step)
    resume: str = "auto"
    # weights a new run starts from (a run directory's newest checkpoint, or a checkpoint folder): stage 2 starts
    # from stage 1's run, stage 1 from converted Whisper + Qwen-7B weights. Only weights are read; null: random init
    init_from: str | None = None
    wandb: WandbConfig = field(default_factory=WandbConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    stage: StageConfig = field(default_factory=StageConfig)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a run's YAML (with its `base:` chain) and apply `a.b.c=value` overrides, values read as YAML.

    Unknown keys and wrongly typed values are ConfigErrors naming the file and line (or the override) and the key.
    """
    data, origins = read_layered_yaml(Path(path))
    for override in overrides:
        apply_override(data, origins, override)
    return build_dataclass(TrainConfig, data, origins, default_origin=str(path), presets={ModelConfig: MODEL_PRESETS})


def config_to_dict(config: TrainConfig) -> dict:
    """Plain data of a config (tuples as lists), for the run directory's copy, checkpoints and wandb."""
    def plain(value):
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value
    return plain(asdict(config))


def dump_config(config: TrainConfig) -> str:
    """The complete config as YAML that load_config reads back to an equal config (every key explicit)."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


RESHARDABLE_TENSOR_PARALLEL = 8  # the vocabulary padding is the same for every TP size that divides this


def padded_vocab(vocab: int, tensor_parallel: int, multiple: int = 128) -> int:
    """Embedding and LM-head rows for `vocab` ids: rounded up to a multiple of `multiple` x lcm(tensor_parallel, 8),
    so each tensor-parallel rank holds an equal slice whose size is a multiple of `multiple` (megatron's
    make-vocab-size-divisible-by rule), and the row count is the same at TP 1, 2, 4 and 8: a checkpoint saved under
    one of them loads under another without touching its vocabulary tensors. Rows past `vocab` are never used."""
    step = multiple * math.lcm(tensor_parallel, RESHARDABLE_TENSOR_PARALLEL)
    return -(-vocab // step) * step


def data_parallel_size(parallel: ParallelConfig, world_size: int) -> int:
    """Model replicas: the processes left after tensor and pipeline parallelism (validate() checks it divides)."""
    return world_size // (parallel.tensor_parallel * parallel.pipeline_parallel)


def pipeline_stage_layers(model: ModelConfig, parallel: ParallelConfig) -> tuple[int, ...]:
    """Decoder layers held by each pipeline stage: parallel.stage_layers, or an even split (validated)."""
    if parallel.stage_layers is not None:
        return tuple(parallel.stage_layers)
    assert model.layers % parallel.pipeline_parallel == 0, "call validate() before splitting the layers"
    return (model.layers // parallel.pipeline_parallel,) * parallel.pipeline_parallel


def batch_summary(config: TrainConfig, world_size: int) -> str:
    """One line of batch arithmetic for the start-up log."""
    parallel, loader = config.parallel, config.data.loader
    data_parallel = data_parallel_size(parallel, world_size)
    batches = data_parallel * parallel.micro_batches_per_step
    return (f"world size {world_size} = tensor {parallel.tensor_parallel} x pipeline {parallel.pipeline_parallel} x "
            f"data {data_parallel}; one step = {data_parallel} data-parallel ranks x "
            f"{parallel.micro_batches_per_step} micro-batches = {batches} loader batches of <= "
            f"{loader.max_batch_tokens:,} token positions, <= {loader.max_batch_samples} samples, <= "
            f"{loader.max_batch_frames:,} mel frames: <= {batches * loader.max_batch_tokens:,} token positions "
            "per step")


def validate(config: TrainConfig, world_size: int, *, check_data: bool = True) -> None:
    """Check a config for a run of `world_size` processes before any process group starts; raise a one-line
    ConfigError (with the numbers) at the first problem.

    Not checked here: whether the stage leaves anything trainable, which needs the model (training/freeze.py).
    `check_data=False` skips the shard sets (the memory plan needs only the shapes and the layout).
    """
    validate_model_layout(config.model, config.parallel, world_size)
    _check_schedule(config)
    if check_data:
        _check_data(config)


def validate_model_layout(model: ModelConfig, parallel: ParallelConfig, world_size: int) -> None:
    """The model's shape and its split over `world_size` processes (what a checkpoint converter needs checked)."""
    if world_size < 1:
        raise ConfigError(f"world size {world_size} must be at least 1")
    _check_model(model)
    _check_layout(model, parallel, world_size)


def _at_least(value: float, minimum: float, key: str, hint: str = "") -> None:
    if value < minimum:
        raise ConfigError(f"{key}={value} must be at least {minimum}{hint}")


def _check_model(model: ModelConfig) -> None:
    for name in ("layers", "hidden_size", "heads", "ffn_hidden_size", "vocab_size", "vocab_pad_multiple",
                 "seq_length"):
        _at_least(getattr(model, name), 1, f"model.{name}")
    encoder = model.audio_encoder
    for name in ("n_mels", "d_model", "layers", "heads", "ffn_dim", "max_source_positions"):
        _at_least(getattr(encoder, name), 1, f"model.audio_encoder.{name}")
    if model.hidden_size % model.heads:  # (the encoder's AudioEncoderConfig checks its own shape when built)
        raise ConfigError(f"model.hidden_size={model.hidden_size} is not divisible by model.heads={model.heads}; "
                          "choose a width that is a whole number of heads")
    if not model.rotary_base > 0 or not model.rms_norm_eps > 0:
        raise ConfigError(f"model.rotary_base={model.rotary_base} and model.rms_norm_eps={model.rms_norm_eps} "
                          "must both be positive")
    tokenizer_ids = max(special_tokens().values()) + 1
    if model.vocab_size < tokenizer_ids:
        raise ConfigError(f"model.vocab_size={model.vocab_size} is smaller than the tokenizer's {tokenizer_ids} ids; "
                          f"use at least {tokenizer_ids} (the released model has {padded_vocab_size()})")
    if model.share_embeddings_and_output_weights:
        raise ConfigError("model.share_embeddings_and_output_weights=true: tied embeddings are not supported (Qwen "
                          "keeps a separate LM head); set it to false")
    if encoder.output_dim != model.hidden_size:
        raise ConfigError(f"model.audio_encoder.output_dim={encoder.output_dim} differs from model.hidden_size="
                          f"{model.hidden_size}; the projection feeds the decoder, so set them equal")
    longest_clip = encoder_frame_count(MAX_MEL_FRAMES)
    if encoder.max_source_positions < longest_clip:
        raise ConfigError(f"model.audio_encoder.max_source_positions={encoder.max_source_positions} is below the "
                          f"{longest_clip} encoder frames of a {MAX_MEL_FRAMES}-frame (30 s) clip; use {longest_clip}")


def _check_layout(model: ModelConfig, parallel: ParallelConfig, world_size: int) -> None:
    tp, pp = parallel.tensor_parallel, parallel.pipeline_parallel
    for name in ("tensor_parallel", "pipeline_parallel", "micro_batches_per_step"):
        _at_least(getattr(parallel, name), 1, f"parallel.{name}")
    if world_size % (tp * pp):
        raise ConfigError(f"world size {world_size} is not divisible by tensor_parallel x pipeline_parallel = "
                          f"{tp} x {pp} = {tp * pp}; start a multiple of {tp * pp} processes or change the layout")
    # The encoder is replicated over the tensor-parallel ranks (each encodes a share of the clips), so only the
    # decoder's shapes must divide by TP.
    for name in ("heads", "ffn_hidden_size"):
        if getattr(model, name) % tp:
            raise ConfigError(f"model.{name}={getattr(model, name)} is not divisible by parallel.tensor_parallel={tp}; "
                              "each tensor-parallel rank must hold an equal share")
    _check_stage_layers(model.layers, parallel)
    if parallel.sequence_parallel and tp == 1:
        raise ConfigError("parallel.sequence_parallel=true needs parallel.tensor_parallel > 1 (it is 1); set it false")
    if parallel.sequence_parallel and parallel.device == "cpu":
        raise ConfigError("parallel.sequence_parallel=true needs Transformer Engine norms, which the CPU runtime "
                          "lacks; set it false with parallel.device=cpu")
    if parallel.recompute == "selective" and not parallel.recompute_modules:
        raise ConfigError("parallel.recompute=selective with no parallel.recompute_modules recomputes nothing; name "
                          "modules (mlp, core_attn) or set parallel.recompute=none")
    if parallel.device == "cpu" and parallel.precision != "fp32":
        raise ConfigError(f"parallel.precision={parallel.precision} with parallel.device=cpu: the CPU runtime "
                          "computes in fp32; set parallel.precision=fp32")


def _check_stage_layers(layers: int, parallel: ParallelConfig) -> None:
    pp, split = parallel.pipeline_parallel, parallel.stage_layers
    if split is None:
        if layers % pp:
            even, extra = divmod(layers, pp)
            example = [even] * (pp - extra) + [even + 1] * extra
            raise ConfigError(f"model.layers={layers} is not divisible by parallel.pipeline_parallel={pp}; "
                              f"list an uneven split in parallel.stage_layers, e.g. {example}")
        return
    if len(split) != pp:
        raise ConfigError(f"parallel.stage_layers={list(split)} has {len(split)} entries for "
                          f"parallel.pipeline_parallel={pp} stages; give one layer count per stage")
    if sum(split) != layers:
        raise ConfigError(f"parallel.stage_layers={list(split)} sums to {sum(split)}, not model.layers={layers}")
    if min(split) < 1:
        raise ConfigError(f"parallel.stage_layers={list(split)}: every stage needs at least 1 decoder layer "
                          "(lighten stage 0 with fewer layers, not none)")


def _check_schedule(config: TrainConfig) -> None:
    _at_least(config.steps, 1, "steps")
    for name in ("log_interval", "save_interval"):
        _at_least(getattr(config, name), 1, name)
    _at_least(config.eval_interval, 0, "eval_interval", " (0 turns evaluation off)")
    if config.eval_interval:
        _at_least(config.eval_steps, 1, "eval_steps")
    _at_least(config.keep_last, 0, "keep_last", " (0 keeps every checkpoint)")
    if config.exit_duration_minutes is not None and config.exit_duration_minutes <= 0:
        raise ConfigError(f"exit_duration_minutes={config.exit_duration_minutes} must be positive (null: no limit)")
    if not config.resume:
        raise ConfigError("resume is empty; use auto, none or the path of a checkpoint")
    if config.wandb.mode not in WANDB_MODES:
        raise ConfigError(f"wandb.mode={config.wandb.mode!r} (from the config or $WANDB_MODE) must be one of "
                          f"{', '.join(WANDB_MODES)}")
    optimizer = config.optimizer
    check_optimizer_schedule(optimizer, config.steps)
    if not all(0 <= beta < 1 for beta in optimizer.betas):
        raise ConfigError(f"optimizer.betas={list(optimizer.betas)} must both lie in [0, 1)")
    if not optimizer.eps > 0:
        raise ConfigError(f"optimizer.eps={optimizer.eps} must be positive")
    _at_least(optimizer.weight_decay, 0, "optimizer.weight_decay")
    _at_least(optimizer.clip_grad, 0, "optimizer.clip_grad", " (0 turns clipping off)")


def check_optimizer_schedule(config: OptimizerConfig, total_steps: int) -> None:
    """Refuse a schedule that cannot run as written, with a one-line ConfigError naming the keys and values."""
    if config.decay not in ("cosine", "linear", "constant"):
        raise ConfigError(f"optimizer.decay={config.decay!r} must be one of cosine, linear, constant")
    if config.lr <= 0 or config.min_lr < 0:
        raise ConfigError(f"optimizer.lr={config.lr} must be positive and optimizer.min_lr={config.min_lr} "
                          "non-negative")
    if config.min_lr > config.lr:
        raise ConfigError(f"optimizer.min_lr={config.min_lr} is above optimizer.lr={config.lr}; the schedule decays "
                          "from lr down to min_lr, so set min_lr <= lr")
    if config.warmup_steps < 0:
        raise ConfigError(f"optimizer.warmup_steps={config.warmup_steps} must be at least 0")
    if config.decay != "constant" and config.warmup_steps >= total_steps:
        raise ConfigError(f"optimizer.warmup_steps={config.warmup_steps} leaves no decay before the last step "
                          f"(steps={total_steps}); use fewer warmup steps or optimizer.decay=constant")



def _check_data(config: TrainConfig) -> None:
    if not config.data.train:
        raise ConfigError("data.train lists no shard sets; add at least one {path_or_url: FOLDER} (mqa-build-shards "
                          "output)")
    if config.eval_interval and not config.data.heldout:
        raise ConfigError(f"eval_interval={config.eval_interval} but data.heldout lists no shard sets; add held-out "
                          "sets or set eval_interval=0")
    for split in ("train", "heldout"):
        for index, spec in enumerate(getattr(config.data, split)):
            key = f"data.{split}[{index}]"
            if not spec.weight > 0:
                raise ConfigError(f"{key}.weight={spec.weight} must be positive (leave a set out to skip it)")
            if spec.url_template is None and urlparse(spec.path_or_url).scheme in ("", "file"):
                index_path = Path(spec.path_or_url.removeprefix("file://").removeprefix("file:")) / INDEX_FILE
                if not index_path.is_file():
                    raise ConfigError(f"{key}.path_or_url={spec.path_or_url}: no {INDEX_FILE} at {index_path} (paths "
                                      "are relative to the directory the run starts in); build the shard set with "
                                      "mqa-build-shards or fix the path")
