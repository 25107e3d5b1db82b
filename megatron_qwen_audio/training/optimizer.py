"""The optimizer: megatron-core's DistributedDataParallel and DistributedOptimizer (AdamW) over the model chunks.

Frozen parameters cost nothing here. Freeze masks (training/freeze.py) are applied before `wrap_ddp`: megatron's DDP
allocates gradient buffers only for parameters with requires_grad, and `get_megatron_optimizer` puts only those in
its parameter groups, so a frozen parameter has no gradient buffer, no fp32 main copy and no Adam moments.

Weight decay rule: a parameter takes no weight decay when it is one-dimensional (norm weights, every bias) or its name
ends in ".bias"; every matrix (linear and convolution weights, embeddings, the LM head) decays. Decaying a norm's
gain or a bias pulls it towards 0, which is not the "small weights" prior decay is meant to express.

A pipeline stage whose parameters are all frozen (stage 1 freezes the decoder, so every stage but the first holds
nothing to train) still gets a DDP wrapper and an optimizer: DDP with no trainable parameter has no buckets and
nothing to reduce, and megatron's optimizer builder keeps that rank's (empty) parameter groups aligned with the
others' so the rank takes part in the gradient-norm all-reduce across the model-parallel group that clipping needs.
Skipping either would leave the other stages waiting in that collective.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from megatron_qwen_audio.training.config import OptimizerConfig

__all__ = ["build_optimizer", "no_weight_decay", "wrap_ddp"]

# megatron's default bucket: big enough for the collectives to be bandwidth-bound, small enough to overlap with the
# backward pass of the layers that are still running
DEFAULT_BUCKET_ELEMENTS = 40_000_000


# the no-decay groups take weight decay 0 from the start; wd_mult 0 keeps the schedule from restoring it
NO_DECAY_GROUP = {"wd_mult": 0.0, "weight_decay": 0.0}


def no_weight_decay(parameter: nn.Parameter, name: str) -> bool:
    """The project's weight-decay rule (see the module doc): True for norm weights and biases."""
    return parameter.ndim == 1 or name.endswith(".bias")


def wrap_ddp(model_chunks: Sequence[nn.Module], *, bucket_elements: int = DEFAULT_BUCKET_ELEMENTS,
             overlap_grad_reduce: bool = True) -> list[nn.Module]:
    """Wrap each model chunk (one per virtual pipeline stage) in megatron's DistributedDataParallel.

    Gradients accumulate in fp32 buffers (bf16 sums over many micro-batches lose the small contributions) and are
    reduce-scattered bucket by bucket while the backward pass runs (`overlap_grad_reduce`), as the distributed
    optimizer expects. As in Megatron-LM only the first chunk is bucketed: the other chunks' reductions already
    overlap with the first chunk's backward. Works unchanged on GPU (NCCL) and on the CPU runtime (gloo). Registers
    on the shared model config what the pipeline schedules call: the chunks' no_sync (no reduction before the last
    micro-batch), their start_grad_sync (each stage starts its reduction when its own backward ends) and megatron's
    finalize_model_grads.
    """
    from megatron.core.distributed import (
        DistributedDataParallel,
        DistributedDataParallelConfig,
        finalize_model_grads,
    )

    assert model_chunks, "wrap_ddp needs at least one model chunk"
    config = model_chunks[0].config
    wrapped = []
    for index, chunk in enumerate(model_chunks):
        ddp_config = DistributedDataParallelConfig(
            grad_reduce_in_fp32=True,
            overlap_grad_reduce=overlap_grad_reduce,
            use_distributed_optimizer=True,
            bucket_size=bucket_elements,
        )
        wrapped.append(DistributedDataParallel(config=config, ddp_config=ddp_config, module=chunk,
                                               disable_bucketing=index > 0))
    config.no_sync_func = _one_or_list([chunk.no_sync for chunk in wrapped])
    if overlap_grad_reduce:
        config.grad_sync_func = _one_or_list([chunk.start_grad_sync for chunk in wrapped])
    config.finalize_model_grads_func = finalize_model_grads
    return wrapped


def _one_or_list(functions: list):
    """The schedules take one function for one chunk and a list (one per chunk) for interleaved pipelines."""
    return functions[0] if len(functions) == 1 else functions


def build_optimizer(ddp_chunks: Sequence[nn.Module], config: OptimizerConfig, precision: str):
    """megatron's DistributedOptimizer (AdamW) over the trainable parameters of `ddp_chunks` (from `wrap_ddp`).

    `precision` is the compute precision the run resolved ("bf16" or "fp32"); with bf16 the optimizer keeps fp32
    main weights and moments. The learning rate and weight decay of each update are set by the schedule
    (training/lr_schedule.LRScheduler), which reads the `wd_mult` this function puts in the groups. `clip_grad`
    0 turns clipping off; the returned optimizer's `step()` reports the gradient norm either way.
    """
    from megatron.core.optimizer import OptimizerConfig as MegatronOptimizerConfig
    from megatron.core.optimizer import (
        ParamKey,
        ParamWithNamePredicate,
        get_megatron_optimizer,
    )

    assert precision in ("bf16", "fp32"), f"precision {precision!r} is not bf16 or fp32"
    megatron_config = MegatronOptimizerConfig(
        optimizer="adam",
        use_distributed_optimizer=True,
        lr=config.lr,
        min_lr=config.min_lr,
        weight_decay=config.weight_decay,
        adam_beta1=config.betas[0],
        adam_beta2=config.betas[1],
        adam_eps=config.eps,
        clip_grad=config.clip_grad,
        bf16=precision == "bf16",
        params_dtype=torch.bfloat16 if precision == "bf16" else torch.float32,
    )
    no_decay = ParamKey(with_name_predicate=ParamWithNamePredicate(name="no_weight_decay", fn=no_weight_decay))
    return get_megatron_optimizer(megatron_config, list(ddp_chunks), config_overrides={no_decay: NO_DECAY_GROUP})
