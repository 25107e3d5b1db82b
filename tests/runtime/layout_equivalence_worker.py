"""Per-rank program of the layout-equivalence tests, started by torchrun (`--standalone`) on CPU.

For each requested layout (TPxPP; data parallel takes the rest of the world) it builds megatron-core's real GPTModel
with the local spec, loads the shared initial weights, and runs one training step the way the engine will:
`get_forward_backward_func()` over 2 micro-batches, megatron DDP with overlapped gradient reduction in small buckets,
per-token loss. Two passes, each from the same weights:
- gradients: DDP all-reduce (no distributed optimizer), so every rank holds its parameters' complete gradients;
- step: DDP + DistributedOptimizer (Adam, active grad clipping), parameters after one step.
The launch without `--initial` (one process, TP=PP=1) is the reference: it draws the initial weights and saves them.
Each rank saves what it observed to `OUT/TPxPP-rankR.pt`; the test compares those with the reference.
"""
import argparse
import threading
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from megatron_qwen_audio.model.parameter_shards import full_parameter_name, tensor_parallel_shard
from megatron_qwen_audio.runtime.parallel import ParallelLayout, initialize_parallel, shutdown_parallel

SEED = 1234
DATA_SEED = 99
NUM_LAYERS = 4
VOCAB = 128
SEQ_LENGTH = 32
GLOBAL_BATCH = 4
NUM_MICROBATCHES = 2
BUCKET_ELEMENTS = 20_000  # several DDP buckets, so overlapped reduction fires bucket by bucket
LEARNING_RATE = 1e-2
ADAM_EPS = 1e-3  # larger than most gradients after clipping: the update stays proportional to them
CLIP_GRAD = 0.1  # below the step's gradient norm, so clipping (and the norm across ranks) matters


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layouts", required=True, help="comma-separated TPxPP, e.g. 2x1,1x2,1x1")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--initial", type=Path, help="full initial weights; without it, draw and save them")
    args = parser.parse_args()
    for layout_name in args.layouts.split(","):
        tp, pp = (int(size) for size in layout_name.split("x"))
        layout = initialize_parallel(tp, pp, device="cpu", seed=SEED)
        result = {"layout": layout, "rng": tracker_draws(), "runtime": runtime_observations()}
        if args.initial is None:
            initial = draw_initial_weights(layout)
            torch.save(initial, args.out / "initial.pt")
        else:
            initial = torch.load(args.initial)
        result.update(gradient_pass(layout, initial))
        result.update(step_pass(layout, initial))
        torch.save(result, args.out / f"{layout_name}-rank{layout.rank}.pt")
        from megatron.core import parallel_state

        parallel_state.destroy_model_parallel()
    shutdown_parallel()


def tracker_draws() -> dict[str, torch.Tensor]:
    """Draws inside megatron's model-parallel RNG fork and right after it (the fork must restore the default state)."""
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    with get_cuda_rng_tracker().fork():
        model_parallel = torch.rand(4)
    return {"model_parallel": model_parallel, "default_after_fork": torch.rand(4)}


def runtime_observations() -> dict[str, object]:
    """What CUDA-placed calls produce under the runtime layer, in this thread, another thread, and a forked worker."""
    observations = {
        "factory_device": torch.zeros(2, device="cuda").device.type,
        "indexed_factory_device": torch.zeros(2, device=torch.device("cuda", 0)).device.type,
        "dot_cuda_device": torch.ones(2).cuda().device.type,
        "to_cuda_device": torch.ones(2).to("cuda:0", torch.float64).device.type,
        "to_index_device": torch.ones(2).to(0).device.type,
        "type_name": torch.ones(2).type(),
        "type_name_double": torch.ones(2, dtype=torch.float64).type(),
        "current_device": torch.cuda.current_device(),
        "cuda_is_available": torch.cuda.is_available(),
    }
    other_thread: list[str] = []
    thread = threading.Thread(target=lambda: other_thread.append(_cuda_factory_outcome()))
    thread.start()
    thread.join()
    observations["other_thread"] = other_thread[0]
    loader = torch.utils.data.DataLoader(_CudaFactoryDataset(), num_workers=1, multiprocessing_context="fork")
    observations["fork_worker"] = next(iter(loader))[0]
    return observations


def _cuda_factory_outcome() -> str:
    try:
        return torch.zeros(1, device="cuda").device.type
    except (RuntimeError, AssertionError) as error:
        return f"error: {type(error).__name__}"


class _CudaFactoryDataset(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> str:
        return _cuda_factory_outcome()


def build_model(layout: ParallelLayout, initial: dict[str, torch.Tensor] | None):
    """Qwen-shaped tiny decoder (RMSNorm, SwiGLU, RoPE, QKV bias only, untied output) from the local spec."""
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer import TransformerConfig

    config = TransformerConfig(
        num_layers=NUM_LAYERS,
        hidden_size=64,
        num_attention_heads=4,
        ffn_hidden_size=128,
        tensor_model_parallel_size=layout.tensor_parallel,
        pipeline_model_parallel_size=layout.pipeline_parallel,
        pipeline_dtype=torch.float32,
        params_dtype=torch.float32,
        use_cpu_initialization=True,
        normalization="RMSNorm",
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bias_activation_fusion=False,
        masked_softmax_fusion=False,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
        calculate_per_token_loss=True,
        batch_p2p_comm=False,
    )
    model = GPTModel(
        config,
        get_gpt_layer_local_spec(normalization="RMSNorm"),
        vocab_size=VOCAB,
        max_sequence_length=SEQ_LENGTH,
        pre_process=layout.is_first_stage,
        post_process=layout.is_last_stage,
        share_embeddings_and_output_weights=False,
        position_embedding_type="rope",
    )
    if initial is not None:
        for name, param in model.named_parameters():
            full = initial[_global_name(name, layout)]
            param.data.copy_(tensor_parallel_shard(full, name, layout.tensor_parallel_rank, layout.tensor_parallel))
    return model


def _global_name(local_name: str, layout: ParallelLayout) -> str:
    return full_parameter_name(local_name, layout.pipeline_parallel_rank * (NUM_LAYERS // layout.pipeline_parallel))


def draw_initial_weights(layout: ParallelLayout) -> dict[str, torch.Tensor]:
    assert layout.world_size == 1, "the initial weights are drawn by the single-process reference"
    model = build_model(layout, initial=None)
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def wrap_ddp(model, use_distributed_optimizer: bool):
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads

    ddp_config = DistributedDataParallelConfig(
        overlap_grad_reduce=True,
        use_distributed_optimizer=use_distributed_optimizer,
        bucket_size=BUCKET_ELEMENTS,
    )
    ddp_model = DistributedDataParallel(config=model.config, ddp_config=ddp_config, module=model)
    model.config.no_sync_func = ddp_model.no_sync
    model.config.finalize_model_grads_func = finalize_model_grads
    return ddp_model


def microbatches(layout: ParallelLayout) -> list[dict[str, torch.Tensor]]:
    """This data-parallel rank's share of one fixed global batch, with some positions masked out of the loss."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    tokens = torch.randint(0, VOCAB, (GLOBAL_BATCH, SEQ_LENGTH + 1), generator=generator)
    loss_mask = torch.ones(GLOBAL_BATCH, SEQ_LENGTH)
    loss_mask[1, :5] = 0  # a prompt
    loss_mask[2, -7:] = 0  # padding
    per_rank = GLOBAL_BATCH // layout.data_parallel
    rows = slice(layout.data_parallel_rank * per_rank, (layout.data_parallel_rank + 1) * per_rank)
    position_ids = torch.arange(SEQ_LENGTH).expand(per_rank, SEQ_LENGTH)
    mine = {
        "tokens": tokens[rows, :-1],
        "labels": tokens[rows, 1:],
        "loss_mask": loss_mask[rows],
        "position_ids": position_ids,
    }
    return [
        {key: value.chunk(NUM_MICROBATCHES)[index] for key, value in mine.items()} for index in range(NUM_MICROBATCHES)
    ]


def forward_step(data_iterator, model):
    batch = next(data_iterator)
    per_token_loss = model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])
    return per_token_loss, partial(summed_loss, batch["loss_mask"])


def summed_loss(loss_mask: torch.Tensor, per_token_loss: torch.Tensor):
    """(sum, tokens, report): megatron divides by the tokens of all micro-batches and data-parallel ranks itself."""
    total = (per_token_loss.float() * loss_mask).sum()
    tokens = loss_mask.sum().to(torch.int)
    return total, tokens, {"lm loss": torch.stack([total.detach().clone(), tokens.float()])}


def run_schedule(layout: ParallelLayout, ddp_model) -> dict[str, torch.Tensor]:
    from megatron.core.pipeline_parallel import get_forward_backward_func

    ddp_model.zero_grad_buffer()
    reports = get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=iter(microbatches(layout)),
        model=[ddp_model],
        num_microbatches=NUM_MICROBATCHES,
        seq_length=SEQ_LENGTH,
        micro_batch_size=GLOBAL_BATCH // (layout.data_parallel * NUM_MICROBATCHES),
        forward_only=False,
    )
    if not layout.is_last_stage:
        return {}
    return {"loss_report": torch.stack([report["lm loss"] for report in reports]).sum(dim=0)}


def gradient_pass(layout: ParallelLayout, initial: dict[str, torch.Tensor]) -> dict[str, object]:
    model = build_model(layout, initial)
    ddp_model = wrap_ddp(model, use_distributed_optimizer=False)
    observed = run_schedule(layout, ddp_model)
    observed["grads"] = {_global_name(name, layout): p.main_grad.clone() for name, p in model.named_parameters()}
    return observed


def step_pass(layout: ParallelLayout, initial: dict[str, torch.Tensor]) -> dict[str, object]:
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    model = build_model(layout, initial)
    ddp_model = wrap_ddp(model, use_distributed_optimizer=True)
    optimizer = get_megatron_optimizer(
        OptimizerConfig(
            optimizer="adam",
            lr=LEARNING_RATE,
            weight_decay=0.0,
            adam_eps=ADAM_EPS,
            clip_grad=CLIP_GRAD,
            use_distributed_optimizer=True,
            params_dtype=torch.float32,
        ),
        [ddp_model],
    )
    optimizer.zero_grad()
    run_schedule(layout, ddp_model)
    update_successful, grad_norm, _ = optimizer.step()
    assert update_successful
    return {
        "grad_norm": grad_norm,
        "params_after_step": {_global_name(name, layout): p.detach().clone() for name, p in model.named_parameters()},
    }


if __name__ == "__main__":
    main()
