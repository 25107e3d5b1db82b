"""Per-rank program of the combined-model layout tests, started by torchrun on CPU (one launch per process count).

For each requested layout (TPxPP; data parallel takes the rest of the world) it loads the shared full weights
(Hugging Face Qwen2 decoder mapped + a tiny encoder) into `QwenAudioModel` and records, through megatron's own
pipeline schedule:
- logits: a forward-only pass over a text batch (compared with transformers' Qwen2ForCausalLM);
- train / stage1 / stage2: one step's gradients with everything trainable, with only the encoder trainable (frozen
  decoder, embedding and head) and with the encoder frozen; megatron DDP with overlapped gradient reduction in small
  buckets, the project's finalize_model_grads, 4 micro-batches of the global batch split over data-parallel ranks;
- packed: the "train" step with every micro-batch packed into one row (compared with the padded "train" step);
- splice (single process only): the decoder input of micro-batch A next to each clip encoded alone.
Each rank saves `OUT/TPxPP-rankR.pt`; the test compares them with the single-process launch's.
"""
import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from qwen_audio_model_fixtures import MODEL, SEED, STAGE_LAYERS, decoder_tokens, micro_batches, packed_micro_batches

from megatron_qwen_audio.model.decoder_spec import transformer_config
from megatron_qwen_audio.model.encoder_tensor_parallel import finalize_model_grads
from megatron_qwen_audio.model.parameter_shards import full_parameter_name, load_full_state
from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel
from megatron_qwen_audio.runtime.parallel import ParallelLayout, initialize_parallel, shutdown_parallel
from megatron_qwen_audio.training.config import ParallelConfig

BUCKET_ELEMENTS = 4_000  # several DDP buckets, the encoder's among them
PASSES = {
    "train": lambda name: True,
    "stage1": lambda name: name.startswith("audio_encoder."),
    "stage2": lambda name: not name.startswith("audio_encoder."),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layouts", required=True, help="comma-separated TPxPP, e.g. 2x1,1x2")
    parser.add_argument("--weights", type=Path, required=True, help="full initial weights")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    full_state = torch.load(args.weights)
    for layout_name in args.layouts.split(","):
        tp, pp = (int(size) for size in layout_name.split("x"))
        layout = initialize_parallel(tp, pp, device="cpu", seed=SEED)
        parallel = ParallelConfig(tensor_parallel=tp, pipeline_parallel=pp, stage_layers=STAGE_LAYERS[pp],
                                  micro_batches_per_step=len(micro_batches()) // layout.data_parallel,
                                  device="cpu", precision="fp32")
        result = {"layout": layout, "logits": decoder_logits(layout, parallel, full_state)}
        for pass_name, trainable in PASSES.items():
            result[pass_name] = training_pass(layout, parallel, full_state, trainable, micro_batches())
        result["packed"] = training_pass(layout, parallel, full_state, PASSES["train"], packed_micro_batches())
        if layout.world_size == 1:
            result["splice"] = splice_observation(layout, parallel, full_state)
        torch.save(result, args.out / f"{layout_name}-rank{layout.rank}.pt")
        from megatron.core import parallel_state

        parallel_state.destroy_model_parallel()
    shutdown_parallel()


def build_model(layout: ParallelLayout, parallel: ParallelConfig, full_state: dict) -> QwenAudioModel:
    model = QwenAudioModel(MODEL, transformer_config(MODEL, parallel, "cpu"))
    load_full_state(model, full_state, model.layer_offset, layout.tensor_parallel_rank, layout.tensor_parallel)
    return model


def run_schedule(model, micro_batch_list: list[dict], forward_only: bool, collect_non_loss_data: bool = False):
    from megatron.core.pipeline_parallel import get_forward_backward_func

    return get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=iter(micro_batch_list),
        model=[model],
        num_microbatches=len(micro_batch_list),
        seq_length=max(batch["tokens"].shape[1] for batch in micro_batch_list),
        micro_batch_size=micro_batch_list[0]["tokens"].shape[0],
        forward_only=forward_only,
        collect_non_loss_data=collect_non_loss_data,
    )


def forward_step(data_iterator, model):
    batch = next(data_iterator)
    return model(**batch), partial(summed_loss, batch.get("loss_mask"))


def summed_loss(loss_mask: torch.Tensor | None, output: torch.Tensor, non_loss_data: bool = False):
    """(sum, target tokens, report) for training; the logits themselves when collecting non-loss data."""
    if non_loss_data:
        return output.detach().clone()
    total = output.sum()
    tokens = loss_mask.sum().to(torch.int)
    return total, tokens, {"lm loss": torch.stack([total.detach().clone(), tokens.float()])}


def decoder_logits(layout: ParallelLayout, parallel: ParallelConfig, full_state: dict) -> torch.Tensor | None:
    """This TP rank's logits of the text batch [B, L, padded_vocab / tp] (last stage), forward only."""
    model = build_model(layout, parallel, full_state).eval()
    with torch.no_grad():
        outputs = run_schedule(model, [{"tokens": decoder_tokens()}], forward_only=True, collect_non_loss_data=True)
    return outputs[0] if layout.is_last_stage else None


def my_micro_batches(layout: ParallelLayout, batches: list[dict]) -> list[dict]:
    per_rank = len(batches) // layout.data_parallel
    return batches[layout.data_parallel_rank * per_rank: (layout.data_parallel_rank + 1) * per_rank]


def training_pass(layout: ParallelLayout, parallel: ParallelConfig, full_state: dict,
                  trainable: Callable[[str], bool], global_batch: list[dict]) -> dict:
    """One step's loss report (last stage) and the full-named gradients of this rank's trainable parameters."""
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig

    model = build_model(layout, parallel, full_state)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(trainable(name))
    ddp_model = DistributedDataParallel(
        config=model.config,
        ddp_config=DistributedDataParallelConfig(overlap_grad_reduce=True, bucket_size=BUCKET_ELEMENTS),
        module=model,
    )
    model.config.no_sync_func = ddp_model.no_sync
    model.config.finalize_model_grads_func = finalize_model_grads
    ddp_model.zero_grad_buffer()
    reports = run_schedule(ddp_model, my_micro_batches(layout, global_batch), forward_only=False)
    observed = {
        "grads": {full_parameter_name(name, model.layer_offset): parameter.main_grad.clone()
                  for name, parameter in model.named_parameters() if parameter.requires_grad},
        "frozen_with_grad": [name for name, parameter in model.named_parameters() if not parameter.requires_grad
                             and (parameter.grad is not None or getattr(parameter, "main_grad", None) is not None)],
    }
    if layout.is_last_stage:
        observed["loss_report"] = torch.stack([report["lm loss"] for report in reports]).sum(dim=0)
    return observed


def splice_observation(layout: ParallelLayout, parallel: ParallelConfig, full_state: dict) -> dict:
    """Micro-batch A's decoder input, its token embeddings, and each of its clips encoded on its own."""
    model = build_model(layout, parallel, full_state)
    batch = micro_batches()[0]
    with torch.no_grad():
        decoder_input = model.decoder_input(batch["tokens"], batch["mel"], batch["mel_lengths"], batch["audio_spans"])
        clips = batch["mel"].split(batch["mel_lengths"].tolist(), dim=1)
        alone = [model.audio_encoder(clip, torch.tensor([clip.shape[1]])).embeddings for clip in clips]
        token_embeddings = model.embedding.word_embeddings.weight[batch["tokens"]]
    return {"decoder_input": decoder_input, "clips_alone": alone, "token_embeddings": token_embeddings,
            "audio_spans": batch["audio_spans"]}


if __name__ == "__main__":
    main()
