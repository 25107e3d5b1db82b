"""`mqa-train --plan`: the memory a run needs per GPU, from the config alone (no process, no model allocation).

Parameters are listed by name and shape in closed form from the config (`stage_parameters`), exactly as the model of
each pipeline stage holds them on one tensor-parallel rank: decoder matrices and the vocabulary rows split over TP,
norms and the audio encoder replicated on every TP rank of stage 0. The stage's freeze patterns then pick the
trainable ones. From those counts, per GPU of each pipeline stage:
- weights: every parameter in the compute dtype (bf16: 2 bytes, fp32: 4);
- gradient buffers: trainable parameters only, fp32 (megatron DDP with grad_reduce_in_fp32), 4 bytes each;
- optimizer state: distributed Adam shards over the data-parallel ranks an fp32 master copy (bf16 runs only) and the
  two fp32 moments of the trainable parameters: (4 + 4 + 4) / DP bytes each in bf16, (4 + 4) / DP in fp32;
- activations (an estimate, no sequence parallelism): a micro-batch is one loader batch of
  T = data.loader.max_batch_tokens token positions and F = max_batch_frames / 2 encoder frames (after the stride-2
  stem). A decoder layer keeps about T x hidden x (10 + 24 / TP) bytes for its backward pass (Korthikanti et al.
  2022, bf16, without the attention-score term that fused attention does not store), of which the MLP's
  intermediates are 16 / TP: selective recompute of "mlp" drops them (the other selective modules save little and
  are not counted); full recompute keeps only each layer's input (T x hidden in the compute dtype) plus one
  layer's activations while it is rerun; an encoder block keeps
  F / TP x d_model x 34 bytes (its clips are split over the TP ranks), and only while the encoder trains; the last
  stage keeps T x padded_vocab / TP logits in the compute dtype plus their fp32 copy for the loss. Layers keep
  nothing when neither they nor anything before them trains. Under the 1F1B pipeline schedule stage i holds
  min(PP - i, micro_batches_per_step) micro-batches in flight.
Not counted: padding megatron adds to its buffers (a few elements per parameter), the CUDA context and allocator
fragmentation (a few GB: keep that much headroom), communication buffers.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from megatron_qwen_audio.model.audio_encoder import AudioEncoderConfig
from megatron_qwen_audio.training.config import (
    ModelConfig,
    TrainConfig,
    data_parallel_size,
    padded_vocab,
    pipeline_stage_layers,
)

__all__ = ["MODULES", "StagePlan", "memory_plan", "render_plan", "stage_parameters"]

GIB = 2**30
MODULES = ("audio_encoder", "embedding", "decoder", "output_layer")
GRAD_BYTES = 4
ADAM_MOMENT_BYTES = 8  # exp_avg + exp_avg_sq in fp32
MASTER_BYTES = 4  # fp32 main parameters of a bf16 run
DECODER_LAYER_ACTIVATION_BYTES = (10, 24)  # bytes per token x hidden: replicated part, part split over TP
MLP_INTERMEDIATE_BYTES = 16  # of the split part: what selective recompute of the MLP leaves out
ENCODER_BLOCK_ACTIVATION_BYTES = 34  # per encoder frame x d_model (the encoder is not tensor-parallel)


def _weight_and_bias(name: str, rows: int, columns: int, bias: bool = True) -> list[tuple[str, int]]:
    """A linear layer's (or, with columns 1, a LayerNorm's) parameters: weight [rows, columns] and bias [rows]."""
    return [(f"{name}.weight", rows * columns)] + ([(f"{name}.bias", rows)] if bias else [])


def _encoder_parameters(config: AudioEncoderConfig) -> list[tuple[str, int]]:
    d, prefix = config.d_model, "audio_encoder"
    parameters = [(f"{prefix}.conv1.weight", config.n_mels * d * 3), (f"{prefix}.conv1.bias", d),
                  (f"{prefix}.conv2.weight", d * d * 3), (f"{prefix}.conv2.bias", d)]
    for block in range(config.layers):
        name = f"{prefix}.blocks.{block}"
        parameters += _weight_and_bias(f"{name}.attn_ln", d, 1)
        parameters += _weight_and_bias(f"{name}.attn.query", d, d)
        parameters += _weight_and_bias(f"{name}.attn.key", d, d, bias=False)
        parameters += _weight_and_bias(f"{name}.attn.value", d, d)
        parameters += _weight_and_bias(f"{name}.attn.out", d, d)
        parameters += _weight_and_bias(f"{name}.mlp_ln", d, 1)
        parameters += _weight_and_bias(f"{name}.mlp.0", config.ffn_dim, d)
        parameters += _weight_and_bias(f"{name}.mlp.2", d, config.ffn_dim)
    parameters += _weight_and_bias(f"{prefix}.ln_post", d, 1)
    parameters += _weight_and_bias(f"{prefix}.proj", config.output_dim, d)
    return parameters + [(f"{prefix}.audio_bos_eos_token.weight", 2 * config.output_dim)]


def _decoder_layer_parameters(model: ModelConfig, tensor_parallel: int, index: int) -> list[tuple[str, int]]:
    h, split = model.hidden_size, tensor_parallel
    name = f"decoder.layers.{index}"
    return [(f"{name}.input_layernorm.weight", h),
            *_weight_and_bias(f"{name}.self_attention.linear_qkv", 3 * h // split, h, bias=model.qkv_bias),
            *_weight_and_bias(f"{name}.self_attention.linear_proj", h, h // split, bias=False),
            (f"{name}.pre_mlp_layernorm.weight", h),
            *_weight_and_bias(f"{name}.mlp.linear_fc1", 2 * model.ffn_hidden_size // split, h, bias=False),
            *_weight_and_bias(f"{name}.mlp.linear_fc2", h, model.ffn_hidden_size // split, bias=False)]


def stage_parameters(config: TrainConfig) -> list[list[tuple[str, int]]]:
    """(name, elements) of every parameter one GPU of each pipeline stage holds, named as the model names them
    (decoder layers by their index within the stage)."""
    model, parallel = config.model, config.parallel
    tp = parallel.tensor_parallel
    vocab_rows = padded_vocab(model.vocab_size, tp, model.vocab_pad_multiple) // tp
    layers = pipeline_stage_layers(model, parallel)
    stages = []
    for stage, count in enumerate(layers):
        parameters = []
        if stage == 0:
            parameters += _encoder_parameters(model.audio_encoder)
            parameters.append(("embedding.word_embeddings.weight", vocab_rows * model.hidden_size))
        for index in range(count):
            parameters += _decoder_layer_parameters(model, tp, index)
        if stage == len(layers) - 1:
            parameters.append(("decoder.final_layernorm.weight", model.hidden_size))
            parameters.append(("output_layer.weight", vocab_rows * model.hidden_size))
        stages.append(parameters)
    return stages


@dataclass(frozen=True)
class StagePlan:
    """Elements and bytes on one GPU of a pipeline stage."""

    stage: int
    decoder_layers: int
    parameters: dict[str, int]  # elements by top-level module (absent modules: 0)
    trainable: dict[str, int]  # trainable elements by top-level module
    optimizer_elements: int  # fp32 state elements of this GPU's optimizer shard (master copy + 2 moments)
    weight_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes_per_micro_batch: int
    micro_batches_in_flight: int

    @property
    def activation_bytes(self) -> int:
        return self.activation_bytes_per_micro_batch * self.micro_batches_in_flight

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.gradient_bytes + self.optimizer_bytes + self.activation_bytes


def _trainable(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def memory_plan(config: TrainConfig, world_size: int) -> list[StagePlan]:
    """The plan of every pipeline stage of `config` run on `world_size` GPUs (call validate() first)."""
    model, parallel, loader = config.model, config.parallel, config.data.loader
    tp, pp = parallel.tensor_parallel, parallel.pipeline_parallel
    dp = data_parallel_size(parallel, world_size)
    bf16 = parallel.precision == "bf16"
    weight_size = 2 if bf16 else 4
    state_per_trainable = ADAM_MOMENT_BYTES + (MASTER_BYTES if bf16 else 0)
    tokens, encoder_frames = loader.max_batch_tokens, loader.max_batch_frames // 2
    replicated, split = DECODER_LAYER_ACTIVATION_BYTES
    if parallel.recompute == "selective" and "mlp" in parallel.recompute_modules:
        split -= MLP_INTERMEDIATE_BYTES
    layer_bytes = tokens * model.hidden_size * (replicated + split // tp)
    full_recompute = parallel.recompute == "full"
    vocab_rows = padded_vocab(model.vocab_size, tp, model.vocab_pad_multiple) // tp
    stages = stage_parameters(config)
    plans, trains_before = [], False
    for stage, (parameters, layer_count) in enumerate(zip(stages, pipeline_stage_layers(model, parallel))):
        by_module, trainable = dict.fromkeys(MODULES, 0), dict.fromkeys(MODULES, 0)
        for name, elements in parameters:
            module = name.split(".")[0]
            by_module[module] += elements
            if _trainable(name, config.stage.trainable):
                trainable[module] += elements
        activations = 0
        if trainable["audio_encoder"]:
            activations += model.audio_encoder.layers * -(-encoder_frames // tp) * model.audio_encoder.d_model \
                * ENCODER_BLOCK_ACTIVATION_BYTES
        trains_before = trains_before or trainable["audio_encoder"] > 0 or trainable["embedding"] > 0 \
            or trainable["decoder"] > 0
        if trains_before and full_recompute:
            activations += layer_count * tokens * model.hidden_size * weight_size + layer_bytes
        elif trains_before:
            activations += layer_count * layer_bytes
        if stage == pp - 1 and (trains_before or trainable["output_layer"]):
            activations += tokens * vocab_rows * (weight_size + 4)
        trainable_total = sum(trainable.values())
        plans.append(StagePlan(
            stage=stage, decoder_layers=layer_count, parameters=by_module, trainable=trainable,
            optimizer_elements=-(-trainable_total // dp) * (3 if bf16 else 2),
            weight_bytes=sum(by_module.values()) * weight_size, gradient_bytes=trainable_total * GRAD_BYTES,
            optimizer_bytes=-(-trainable_total // dp) * state_per_trainable,
            activation_bytes_per_micro_batch=activations,
            micro_batches_in_flight=min(pp - stage, parallel.micro_batches_per_step)))
    return plans


def _gib(size: int) -> str:
    return f"{size / GIB:.1f}"


def render_plan(config: TrainConfig, world_size: int, gpu_memory_gb: float) -> tuple[str, bool]:
    """A Markdown table of the plan (elements in millions, memory in GiB), the worst stage and the verdict; and
    whether the worst stage fits in `gpu_memory_gb` GiB."""
    plans = memory_plan(config, world_size)
    parallel, loader = config.parallel, config.data.loader
    rows = [("audio encoder params (M)", lambda p: f"{p.parameters['audio_encoder'] / 1e6:,.1f}"),
            ("embedding params (M)", lambda p: f"{p.parameters['embedding'] / 1e6:,.1f}"),
            ("decoder params (M)", lambda p: f"{p.parameters['decoder'] / 1e6:,.1f} ({p.decoder_layers} layers)"),
            ("LM head params (M)", lambda p: f"{p.parameters['output_layer'] / 1e6:,.1f}"),
            ("trainable params (M)", lambda p: f"{sum(p.trainable.values()) / 1e6:,.1f}"),
            ("weights (GiB)", lambda p: _gib(p.weight_bytes)),
            ("fp32 gradient buffers (GiB)", lambda p: _gib(p.gradient_bytes)),
            ("distributed Adam state (GiB)", lambda p: _gib(p.optimizer_bytes)),
            ("activations per micro-batch (GiB)", lambda p: _gib(p.activation_bytes_per_micro_batch)),
            ("micro-batches in flight", lambda p: str(p.micro_batches_in_flight)),
            ("total (GiB)", lambda p: _gib(p.total_bytes))]
    header = ["per GPU", *(f"stage {plan.stage}" for plan in plans)]
    lines = [(f"stage {config.stage.name!r}, {world_size} GPUs = tensor {parallel.tensor_parallel} x pipeline "
              f"{parallel.pipeline_parallel} x data {data_parallel_size(parallel, world_size)}, {parallel.precision}, "
              f"micro-batch <= {loader.max_batch_tokens:,} token positions and {loader.max_batch_frames:,} mel frames"),
             "",
             "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(plans)) + "|"]
    lines += ["| " + " | ".join([label, *(cell(plan) for plan in plans)]) + " |" for label, cell in rows]
    worst = max(plans, key=lambda plan: plan.total_bytes)
    available = gpu_memory_gb * GIB
    fits = worst.total_bytes <= available
    verdict = "fits" if fits else "does NOT fit"
    lines += ["", (f"worst stage {worst.stage}: {_gib(worst.total_bytes)} GiB of {gpu_memory_gb:g} GiB per GPU: "
                   f"{verdict} (before the CUDA context, fragmentation and communication buffers: keep a few GiB "
                   "free)")]
    return "\n".join(lines), fits
