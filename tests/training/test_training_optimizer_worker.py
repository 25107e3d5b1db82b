"""Per-rank program of the optimizer tests (started by torchrun from test_training_optimizer.py; defines no tests).

It builds the runtime tests' tiny Qwen-shaped megatron GPTModel (tests/runtime/layout_equivalence_worker.py),
applies a freeze mask, wraps it with the project's `wrap_ddp`, builds the project's optimizer and schedule, and saves
what each rank observed to `OUT/CHECK-rankR.pt`:
- `frozen_part` (1 process): which parameters got gradient buffers and Adam state, the change of every parameter
  after one update with all-zero gradients (weight decay alone), then after one real training step;
- `frozen_stage` (2 processes, PP=2): stage 1 entirely frozen; two training steps, the gradient norm each rank
  reported and every parameter before and after.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))  # the runtime tests' model and schedule helpers
from layout_equivalence_worker import SEED, build_model, run_schedule

from megatron_qwen_audio.runtime.parallel import initialize_parallel, shutdown_parallel
from megatron_qwen_audio.training.config import OptimizerConfig, StageConfig
from megatron_qwen_audio.training.freeze import apply_freeze
from megatron_qwen_audio.training.lr_schedule import LRScheduler
from megatron_qwen_audio.training.optimizer import build_optimizer, wrap_ddp

# no warmup, so the first update's rate is far from 0 and a weight-decay-only update visibly scales the weights
OPTIMIZER = OptimizerConfig(lr=1e-2, min_lr=1e-3, warmup_steps=0, decay="cosine", weight_decay=0.1,
                            betas=(0.9, 0.98), eps=1e-3, clip_grad=1.0)
TOTAL_STEPS = 10
BUCKET_ELEMENTS = 20_000  # several buckets, so the overlapped reduction runs bucket by bucket
FROZEN_PART = StageConfig(
    name="frozen_part",
    trainable=["decoder.layers.2.*", "decoder.layers.3.*", "decoder.final_layernorm.*", "output_layer.*"],
    frozen=["embedding.*", "decoder.layers.0.*", "decoder.layers.1.*"],
)
TRAIN_ALL = StageConfig(name="frozen_stage", trainable=["*"], frozen=[])
FREEZE_ALL = StageConfig(name="frozen_stage", trainable=[], frozen=["*"])


def parameters(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def state_elements(optimizer) -> dict[str, int]:
    """Elements of the Adam moments the optimizer holds, over all its (chained, distributed) inner optimizers."""
    counts = {"exp_avg": 0, "exp_avg_sq": 0}
    for inner in optimizer.chained_optimizers:
        for state in inner.optimizer.state.values():
            for key in counts:
                counts[key] += state[key].numel()
    return counts


def frozen_part(out: Path) -> None:
    layout = initialize_parallel(1, 1, device="cpu", seed=SEED)
    model = build_model(layout, initial=None)
    with torch.no_grad():  # biases start at 0, where decaying them would not show
        for name, parameter in model.named_parameters():
            if name.endswith(".bias"):
                parameter.uniform_(0.5, 1.0)
    apply_freeze(model, FROZEN_PART)
    (ddp_model,) = wrap_ddp([model], bucket_elements=BUCKET_ELEMENTS)
    optimizer = build_optimizer([ddp_model], OPTIMIZER, precision="fp32")
    schedule = LRScheduler(optimizer, OPTIMIZER, TOTAL_STEPS)
    result = {
        "trainable": {name for name, p in model.named_parameters() if p.requires_grad},
        "with_main_grad": {name for name, p in model.named_parameters() if hasattr(p, "main_grad")},
        "in_grad_buffers": {
            name for name, p in model.named_parameters()
            if any(p in buffer.param_index_map for buffer in ddp_model.buffers)
        },
        "numel": {name: p.numel() for name, p in model.named_parameters()},
        "ndim": {name: p.ndim for name, p in model.named_parameters()},
        "lr": schedule.current_lr,
        "weight_decay": OPTIMIZER.weight_decay,
        "initial": parameters(model),
    }
    ddp_model.zero_grad_buffer()
    optimizer.zero_grad()
    success, result["zero_grad_norm"], _ = optimizer.step()
    assert success
    result["after_decay_only"] = parameters(model)
    schedule.step()
    optimizer.zero_grad()
    run_schedule(layout, ddp_model)
    success, result["grad_norm"], _ = optimizer.step()
    assert success
    result["after_training_step"] = parameters(model)
    result["state_elements"] = state_elements(optimizer)
    torch.save(result, out / f"frozen_part-rank{layout.rank}.pt")
    shutdown_parallel()


def frozen_stage(out: Path) -> None:
    layout = initialize_parallel(1, 2, device="cpu", seed=SEED)
    model = build_model(layout, initial=None)
    apply_freeze(model, FREEZE_ALL if layout.pipeline_parallel_rank == 1 else TRAIN_ALL, require_trainable=False)
    (ddp_model,) = wrap_ddp([model], bucket_elements=BUCKET_ELEMENTS)
    optimizer = build_optimizer([ddp_model], OPTIMIZER, precision="fp32")
    schedule = LRScheduler(optimizer, OPTIMIZER, TOTAL_STEPS)
    result = {"layout": layout, "initial": parameters(model), "grad_norms": [], "own_grad_norms": []}
    for _ in range(2):
        optimizer.zero_grad()
        run_schedule(layout, ddp_model)
        own = [p.main_grad.norm() for p in model.parameters() if p.requires_grad]
        result["own_grad_norms"].append(float(torch.stack(own).norm()) if own else 0.0)
        success, grad_norm, _ = optimizer.step()
        assert success
        schedule.step()
        result["grad_norms"].append(grad_norm)
    result["final"] = parameters(model)
    result["state_elements"] = state_elements(optimizer)
    torch.save(result, out / f"frozen_stage-rank{layout.rank}.pt")
    shutdown_parallel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", choices=["frozen_part", "frozen_stage"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    {"frozen_part": frozen_part, "frozen_stage": frozen_stage}[args.check](args.out)


if __name__ == "__main__":
    main()
