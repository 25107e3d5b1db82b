"""Per-rank program of the converter tests (torchrun on CPU): load a converted checkpoint the way a run's `init_from`
does, at each requested TPxPP layout, and record the logits of the shared batches through megatron's schedule.

Each last-stage rank writes `OUT/TPxPP-rankR.pt` with the text batch's logits (and, with --audio, the audio batch's),
gathered over the tensor-parallel group to the full padded vocabulary. `--save-layout TPxPP --save-to DIR` also saves
the loaded weights as a training checkpoint from that layout (for the test that exports from any layout).
`--greedy PROMPT.pt` (one process) adds the project's greedy decoding of that prompt.
"""
import argparse
from pathlib import Path

import torch
import torch.distributed as dist
from convert_sources import audio_batch, text_tokens
from qwen_audio_model_worker import run_schedule

from megatron_qwen_audio.inference.greedy import greedy_decode
from megatron_qwen_audio.model.decoder_spec import transformer_config
from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel
from megatron_qwen_audio.runtime.parallel import initialize_parallel, shutdown_parallel
from megatron_qwen_audio.training.checkpointing import CONFIG_FILE, CheckpointManager
from megatron_qwen_audio.training.config import ParallelConfig, load_config


def full_vocab_logits(model, batch: dict) -> torch.Tensor | None:
    from megatron.core import parallel_state

    with torch.no_grad():
        outputs = run_schedule(model, [batch], forward_only=True, collect_non_loss_data=True)
    if not parallel_state.is_pipeline_last_stage():
        return None
    shard = outputs[0]
    group = parallel_state.get_tensor_model_parallel_group()
    pieces = [torch.empty_like(shard) for _ in range(dist.get_world_size(group))]
    dist.all_gather(pieces, shard.contiguous(), group=group)
    return torch.cat(pieces, dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--layouts", required=True, help="comma-separated TPxPP")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--audio", action="store_true", help="also the audio batch")
    parser.add_argument("--save-layout", default=None)
    parser.add_argument("--save-to", type=Path, default=None)
    parser.add_argument("--greedy", type=Path, default=None, help="prompt file: tokens, mel, mel_lengths, spans")
    parser.add_argument("--greedy-tokens", type=int, default=12)
    parser.add_argument("--stop-ids", type=lambda text: {int(n) for n in text.split(",")}, default=set())
    args = parser.parse_args()
    model_config = load_config(args.ckpt / CONFIG_FILE).model
    for layout_name in args.layouts.split(","):
        tp, pp = (int(size) for size in layout_name.split("x"))
        layout = initialize_parallel(tp, pp, device="cpu", seed=0)
        parallel = ParallelConfig(tensor_parallel=tp, pipeline_parallel=pp, device="cpu", precision="fp32")
        model = QwenAudioModel(model_config, transformer_config(model_config, parallel, "cpu")).eval()
        CheckpointManager.load(args.ckpt, [model], optimizer=None)
        result = {"text": full_vocab_logits(model, {"tokens": text_tokens()})}
        if args.audio:
            result["audio"] = full_vocab_logits(model, audio_batch())
        if args.greedy is not None:
            prompt = torch.load(args.greedy)
            result["greedy"] = greedy_decode(model, prompt["tokens"], prompt["mel"], prompt["mel_lengths"],
                                             prompt["audio_spans"], max_new_tokens=args.greedy_tokens,
                                             stop_ids=args.stop_ids)
        if layout.is_last_stage and layout.tensor_parallel_rank == 0:
            torch.save(result, args.out / f"{layout_name}-rank{layout.rank}.pt")
        if layout_name == args.save_layout:
            from megatron_qwen_audio.training.config import TrainConfig

            config = TrainConfig(run_dir=str(args.save_to), model=model_config, parallel=parallel)
            CheckpointManager(args.save_to, keep_last=0).save(1, [model], None, {}, {}, loader_state=None,
                                                               config=config)
        from megatron.core import parallel_state

        parallel_state.destroy_model_parallel()
    shutdown_parallel()


if __name__ == "__main__":
    main()
