"""The Qwen decoder in megatron-core terms: the layer's ModuleSpec and the TransformerConfig of a run.

Qwen-7B (and the Qwen-Audio LLM) is a pre-norm decoder with RMSNorm, attention whose query/key/value projections
have biases and whose output projection has none, a SwiGLU MLP without biases, RoPE (base 10000, rotate-half) and a
separate LM head. In megatron-core that is a `TransformerLayer` of local modules (ColumnParallelLinear /
RowParallelLinear, torch RMSNorm) with `add_qkv_bias=True`, `add_bias_linear=False`, `gated_linear_unit=True` and
SiLU, which is also the math of Hugging Face `Qwen2ForCausalLM` (the tests' reference).

The core attention is `SdpaAttention` (torch SDPA, flash on GPU) instead of megatron's unfused
`DotProductAttention`. Transformer Engine specs (fused norm+linear, TE attention) are not used: their parameter
names differ (`linear_qkv.layer_norm_weight`), and the checkpoint mapping and freeze patterns are written for these.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add
from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear
from megatron.core.transformer.attention import SelfAttention, SelfAttentionSubmodules
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.identity_op import IdentityOp
from megatron.core.transformer.mlp import MLP, MLPSubmodules
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.torch_norm import WrappedTorchNorm
from megatron.core.transformer.transformer_config import TransformerConfig
from megatron.core.transformer.transformer_layer import TransformerLayer, TransformerLayerSubmodules

from megatron_qwen_audio.model.sdpa_attention import SdpaAttention
from megatron_qwen_audio.training.config import ModelConfig, ParallelConfig, pipeline_stage_layers

# Qwen's initializer_range: the std of every normal-initialised decoder weight.
INIT_METHOD_STD = 0.02


def qwen_decoder_layer_spec() -> ModuleSpec:
    """One Qwen decoder layer: x + proj(attn(rmsnorm(x))), then x + fc2(silu(gate) * up) of rmsnorm(x)."""
    return ModuleSpec(
        module=TransformerLayer,
        submodules=TransformerLayerSubmodules(
            input_layernorm=WrappedTorchNorm,
            self_attention=ModuleSpec(
                module=SelfAttention,
                params={"attn_mask_type": AttnMaskType.causal},
                submodules=SelfAttentionSubmodules(
                    linear_qkv=ColumnParallelLinear,
                    core_attention=SdpaAttention,
                    linear_proj=RowParallelLinear,
                    q_layernorm=IdentityOp,
                    k_layernorm=IdentityOp,
                ),
            ),
            self_attn_bda=get_bias_dropout_add,
            pre_mlp_layernorm=WrappedTorchNorm,
            mlp=ModuleSpec(module=MLP, submodules=MLPSubmodules(linear_fc1=ColumnParallelLinear,
                                                               linear_fc2=RowParallelLinear)),
            mlp_bda=get_bias_dropout_add,
        ),
    )


def pipeline_layout(stage_layers: tuple[int, ...]) -> list[list[str]]:
    """megatron's per-stage layer list: the embedding on stage 0, `stage_layers[i]` decoder layers on stage i, the
    loss on the last stage. This expresses any uneven split (megatron's first/last-stage counts cannot)."""
    layout = [["decoder"] * count for count in stage_layers]
    layout[0].insert(0, "embedding")
    layout[-1].append("loss")
    return layout


def transformer_config(model: ModelConfig, parallel: ParallelConfig, device: str) -> TransformerConfig:
    """The megatron TransformerConfig of the decoder for `device` ("cpu" or "cuda", as the runtime resolved it).

    CPU: fp32, weights built on the CPU, point-to-point sends one by one (batched p2p on gloo is wrong when both
    pipeline neighbours are the same rank). GPU: bf16 parameters and compute, weights built on the GPU. Fusions that
    need apex or Transformer Engine are off. `variable_seq_lengths` lets micro-batches of different lengths (audio spans
    make them vary) pass through the pipeline: the schedule sends each activation's shape before it.
    `calculate_per_token_loss` makes the schedule divide by the target tokens of the whole global batch.
    """
    if parallel.sequence_parallel:
        raise ValueError("parallel.sequence_parallel=true needs Transformer Engine layer specs; the local Qwen spec "
                         "supports none; set it false")
    precision = parallel.resolved_precision(device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    on_cpu = device == "cpu"
    return TransformerConfig(
        num_layers=model.layers,
        hidden_size=model.hidden_size,
        num_attention_heads=model.heads,
        ffn_hidden_size=model.ffn_hidden_size,
        tensor_model_parallel_size=parallel.tensor_parallel,
        pipeline_model_parallel_size=parallel.pipeline_parallel,
        pipeline_model_parallel_layout=pipeline_layout(pipeline_stage_layers(model, parallel)),
        pipeline_dtype=dtype,
        params_dtype=dtype,
        bf16=precision == "bf16",
        use_cpu_initialization=on_cpu,
        init_method_std=INIT_METHOD_STD,
        normalization="RMSNorm",
        layernorm_epsilon=model.rms_norm_eps,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=model.qkv_bias,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bias_activation_fusion=False,
        bias_dropout_fusion=False,
        masked_softmax_fusion=False,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
        calculate_per_token_loss=True,
        variable_seq_lengths=True,
        # no experts here; megatron refuses variable_seq_lengths with its default (allgather) MoE dispatcher anyway
        moe_token_dispatcher_type="alltoall",
        batch_p2p_comm=not on_cpu,
        **_recompute_settings(parallel),
    )


def _recompute_settings(parallel: ParallelConfig) -> dict:
    """megatron's recompute fields for `parallel.recompute` (config.py documents the choices): "full" checkpoints
    every layer on its own (uniform, one layer per unit), so only the layer inputs stay between the passes."""
    if parallel.recompute == "selective":
        return {"recompute_granularity": "selective", "recompute_modules": list(parallel.recompute_modules)}
    if parallel.recompute == "full":
        return {"recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 1}
    return {}
