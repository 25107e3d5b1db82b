"""The training run: `Trainer(config).train()`.

`Trainer.__init__` reads like the recipe, top to bottom: process groups and device -> loaders (one per data-parallel
rank: every tensor- and pipeline-parallel rank of a replica reads the same batches) with the tokenizer check ->
this pipeline stage of the model -> `init_from` weights -> the stage's freeze masks (table printed once) -> DDP and
the distributed optimizer -> learning-rate schedule -> checkpoints (resume) -> metrics. `train()` then repeats
`train_step` (training/train_step.py), logs every `log_interval` steps, evaluates every `eval_interval`, saves every
`save_interval` steps, at the last step, and after a preemption signal or `exit_duration_minutes` (then it returns;
the process exits 0).

Per-task losses: every rank of a replica reads the same batches, so the last pipeline stage knows each sample's task
(`AudioTextBatch.tasks`) and the loss function reports each sample's loss sum and target tokens; the sums and tokens of
each task are added over the interval, then over the data-parallel ranks, and divided once (token-weighted, like the
overall loss). Held-out losses go to the metrics as lines of their own (`MetricsLogger.log_eval`).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from megatron_qwen_audio.data.collate import AudioTextBatch
from megatron_qwen_audio.data.loader import AudioTextLoader
from megatron_qwen_audio.data.shard_sets import ShardSet
from megatron_qwen_audio.model.decoder_spec import transformer_config
from megatron_qwen_audio.model.encoder_tensor_parallel import finalize_model_grads
from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel
from megatron_qwen_audio.runtime.parallel import ParallelLayout, initialize_parallel
from megatron_qwen_audio.text.fetch import resolve_tokenizer_file
from megatron_qwen_audio.text.tokenizer import QwenTokenizer
from megatron_qwen_audio.training.checkpointing import CheckpointManager, checkpoint_folder
from megatron_qwen_audio.training.config import ConfigError, ModelConfig, TrainConfig, batch_summary, config_to_dict
from megatron_qwen_audio.training.freeze import FreezeReport, apply_freeze
from megatron_qwen_audio.training.lr_schedule import LRScheduler
from megatron_qwen_audio.training.metrics import IntervalMetrics, MetricsLogger
from megatron_qwen_audio.training.model_flops import Role, module_flops
from megatron_qwen_audio.training.optimizer import build_optimizer, wrap_ddp
from megatron_qwen_audio.training.preemption import PreemptionFlag
from megatron_qwen_audio.training.train_step import LossSum, StepResult, evaluate, model_inputs, train_step

__all__ = ["StepFlops", "Trainer", "apply_stage", "check_tokenizer"]

# the model's top-level modules in data-flow order (a module back-propagates when one before it trains); the
# embedding is a lookup, not a matrix product, and counts no FLOPs
FLOP_MODULES = ("audio_encoder", "decoder", "output_layer")
MODULE_ORDER = ("audio_encoder", "embedding", "decoder", "output_layer")
NO_LOSS = LossSum(0.0, 0)


class Trainer:
    """One rank's part of a training run (every rank of the job builds one and calls `train()`)."""

    config: TrainConfig
    layout: ParallelLayout
    device: torch.device
    train_loader: AudioTextLoader
    heldout_loader: AudioTextLoader | None
    model_chunks: list[nn.Module]  # this pipeline stage's model, wrapped in megatron's DDP
    freeze_report: FreezeReport  # of the whole model replica
    optimizer: object  # megatron's DistributedOptimizer
    scheduler: LRScheduler
    checkpoints: CheckpointManager
    metrics: MetricsLogger
    step: int  # optimizer updates completed

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        parallel = config.parallel
        self.layout = initialize_parallel(parallel.tensor_parallel, parallel.pipeline_parallel, parallel.device,
                                          config.seed)
        self.device = torch.device("cuda", torch.cuda.current_device()) if self.layout.device == "cuda" \
            else torch.device("cpu")
        self._print(batch_summary(config, self.layout.world_size))

        dp_rank, dp_size = self.layout.data_parallel_rank, self.layout.data_parallel
        self.train_loader = AudioTextLoader(config.data.train, config.data.loader, dp_rank, dp_size)
        self.heldout_loader = (AudioTextLoader(config.data.heldout, config.data.loader, dp_rank, dp_size)
                               if config.eval_interval else None)
        self._heldout_start = self.heldout_loader.state_dict() if self.heldout_loader else None
        check_tokenizer([*self.train_loader.sets, *(self.heldout_loader.sets if self.heldout_loader else [])])

        model = QwenAudioModel(config.model, transformer_config(config.model, parallel, self.layout.device))
        self.checkpoints = CheckpointManager.for_run(config)
        resume_from = self.checkpoints.checkpoint_to_resume(config.resume)
        if resume_from is None and config.init_from:
            CheckpointManager.load(checkpoint_folder(config.init_from), [model], optimizer=None)
            self._print(f"initial weights from {config.init_from}")
        self.freeze_report = apply_stage(model, config, self.layout)
        self._print(self.freeze_report.render())
        self.step_flops = StepFlops(model, config.model, self.freeze_report,
                                    count_encoder=self.layout.tensor_parallel_rank == 0)

        self.model_chunks = wrap_ddp([model])
        model.config.finalize_model_grads_func = finalize_model_grads  # adds the encoder's tensor-parallel sum
        self.optimizer = build_optimizer(self.model_chunks, config.optimizer,
                                         parallel.resolved_precision(self.layout.device))
        self.scheduler = LRScheduler(self.optimizer, config.optimizer, config.steps)

        self.step = 0
        if resume_from is not None:
            state = CheckpointManager.load(resume_from, self.model_chunks, self.optimizer)
            self.scheduler.load_state_dict(state["scheduler"])
            self.train_loader.load_state_dict(state["loader"])
            self.step = state["step"]
            self._print(f"resumed from {resume_from} at step {self.step}")

        is_logging_rank = (self.layout.is_last_stage and self.layout.tensor_parallel_rank == 0
                           and self.layout.data_parallel_rank == 0)
        self.metrics = MetricsLogger(config.run_dir, config.wandb, config_to_dict(config), is_logging_rank,
                                     devices=self.layout.world_size)

    def train(self) -> bool:
        """Train up to `config.steps`; True when stopped early, after saving, by a preemption signal or by
        `exit_duration_minutes`."""
        config = self.config
        interval = _Interval()
        batches = iter(self.train_loader)
        deadline = (time.monotonic() + 60 * config.exit_duration_minutes
                    if config.exit_duration_minutes is not None else None)
        with PreemptionFlag(deadline=deadline) as preemption:
            while self.step < config.steps:
                step_batches = [next(batches) for _ in range(config.parallel.micro_batches_per_step)]
                learning_rate = self.scheduler.current_lr
                result = train_step(self.model_chunks, self.optimizer,
                                    [model_inputs(batch, self.device) for batch in step_batches],
                                    config.loss_averaging)
                self.scheduler.step()
                self.step += 1
                interval.add(result, step_batches, self.step_flops(step_batches))
                if self.step % config.log_interval == 0 or self.step == config.steps:
                    self._log(interval, learning_rate, result.grad_norm)
                    interval = _Interval()
                if config.eval_interval and self.step % config.eval_interval == 0:
                    self._evaluate()
                preempted = preemption.should_save_and_exit()
                if preempted or self.step % config.save_interval == 0 or self.step == config.steps:
                    self._save()
                if preempted and self.step < config.steps:
                    reason = (f"exit_duration_minutes={config.exit_duration_minutes} passed" if preemption.past_deadline
                              else "preemption signal")
                    self._print(f"{reason}: saved step {self.step} of {config.steps}, stopping")
                    break
        self.metrics.close()
        return self.step < config.steps

    def _log(self, interval: _Interval, learning_rate: float, grad_norm: float) -> None:
        """One metrics line; every rank takes part (tokens and audio of the other data-parallel ranks, FLOPs of all)."""
        from megatron.core import parallel_state

        # self.device: NCCL reduces GPU tensors, gloo (the CPU runtime) CPU ones
        data_group = parallel_state.get_data_parallel_group()
        totals = torch.tensor([interval.positions, interval.audio_seconds], dtype=torch.float64,
                              device=self.device)
        dist.all_reduce(totals, group=data_group)
        flops = torch.tensor([interval.flops], dtype=torch.float64, device=self.device)
        dist.all_reduce(flops)
        task_sums = _sum_tasks_over_group(interval.task_sums, data_group)
        line = self.metrics.log(IntervalMetrics(
            step=self.step, loss=interval.loss.mean, lr=learning_rate, grad_norm=grad_norm,
            task_losses={task: loss.mean for task, loss in task_sums.items()},
            task_tokens={task: loss.tokens for task, loss in task_sums.items()},
            tokens=round(totals[0].item()), audio_seconds=totals[1].item(), flops=flops.item(),
            seconds=time.monotonic() - interval.started))
        if line:
            print(f"step {self.step}/{self.config.steps}  loss {line['loss']:.4f}  lr {learning_rate:.3g}  "
                  f"grad norm {grad_norm:.3g}  {line['tokens_per_s']:.0f} tokens/s", flush=True)

    def _evaluate(self) -> None:
        """Held-out loss over the same first `eval_steps` batches of each data-parallel rank every time."""
        self.heldout_loader.load_state_dict(self._heldout_start)
        batches = iter(self.heldout_loader)
        inputs = [model_inputs(next(batches), self.device) for _ in range(self.config.eval_steps)]
        loss = evaluate(self.model_chunks, inputs)
        self.metrics.log_eval(self.step, loss.mean)
        if self.metrics.is_logging_rank:
            print(f"step {self.step}/{self.config.steps}  heldout loss {loss.mean:.4f} over {loss.tokens} target "
                  "tokens", flush=True)

    def _save(self) -> None:
        folder = self.checkpoints.save(self.step, self.model_chunks, self.optimizer, self.scheduler.state_dict(),
                                       {"stage": self.config.stage.name},
                                       loader_state=self.train_loader.state_dict(), config=self.config)
        self._print(f"saved {folder}")

    def _print(self, text: str) -> None:
        """Start-up and checkpoint messages, once per job (global rank 0)."""
        if self.layout.rank == 0:
            print(text, flush=True)


class _Interval:
    """What this rank saw since the last metrics line."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.loss = NO_LOSS
        self.task_sums: dict[str, LossSum] = {}  # this data-parallel rank's samples only (last pipeline stage)
        self.positions, self.audio_seconds, self.flops = 0, 0.0, 0.0

    def add(self, result: StepResult, batches: Sequence[AudioTextBatch], flops: float) -> None:
        self.loss += result.loss
        for samples, batch in zip(result.sample_losses, batches):
            for task, (total, tokens) in zip(batch.tasks, samples.T.tolist()):
                self.task_sums[task] = self.task_sums.get(task, NO_LOSS) + LossSum(total, round(tokens))
        self.positions += sum(batch.tokens.numel() for batch in batches)
        self.audio_seconds += sum(batch.audio_seconds for batch in batches)
        self.flops += flops


def _sum_tasks_over_group(task_sums: dict[str, LossSum], group) -> dict[str, LossSum]:
    """Per-task loss sums and tokens added over `group` (the tasks differ by rank, so they travel as objects), in
    sorted task order; tasks without target tokens are left out."""
    gathered: list[dict[str, LossSum] | None] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, task_sums, group=group)
    totals: dict[str, LossSum] = {}
    for rank_sums in gathered:
        for task, loss in rank_sums.items():
            totals[task] = totals.get(task, NO_LOSS) + loss
    return {task: totals[task] for task in sorted(totals) if totals[task].tokens}


class StepFlops:
    """Useful model FLOPs this rank spends on a step (training/model_flops.py): real clip frames and tokens only, each
    module's backward set by its role under the stage's freeze masks (of the whole replica, so a later pipeline stage
    knows that an encoder before it trains). The training metrics and the step benchmark count alike.

    The encoder counts once per replica, on TP rank 0 (`count_encoder`); the decoder layers and the LM head are split
    over the TP ranks, so each counts its 1/TP share, and the sum over all ranks is the model's.
    """

    def __init__(self, model: nn.Module, model_config: ModelConfig, report: FreezeReport, count_encoder: bool) -> None:
        self.model_config = model_config
        self.tensor_parallel = model.config.tensor_model_parallel_size
        self.vocab_rows = model.padded_vocab_size
        self.decoder_layers = len(model.decoder.layers)
        self.roles: dict[str, Role] = {}
        for name in FLOP_MODULES:
            if getattr(model, name, None) is None or (name == "audio_encoder" and not count_encoder):
                continue
            earlier = MODULE_ORDER[:MODULE_ORDER.index(name)]
            if report.counts[name].trainable > 0:
                self.roles[name] = Role.TRAINED
            elif any(report.counts[before].trainable > 0 for before in earlier if before in report.counts):
                self.roles[name] = Role.BACKPROPAGATED
            else:
                self.roles[name] = Role.FORWARD

    def __call__(self, batches: Sequence[AudioTextBatch]) -> float:
        model = self.model_config
        flops = module_flops(model.audio_encoder, model.hidden_size, model.ffn_hidden_size, self.vocab_rows,
                             clip_frames=[int(frames) for batch in batches for frames in batch.mel_lengths],
                             sequence_lengths=[length for batch in batches for length in batch.sequence_lengths],
                             target_tokens=sum(batch.num_target_tokens for batch in batches),
                             decoder_layers=self.decoder_layers, roles=self.roles)
        return sum(count if name == "audio_encoder" else count / self.tensor_parallel for name, count in flops.items())


def check_tokenizer(sets: Sequence[ShardSet], tokenizer_file: Path | None = None) -> None:
    """Refuse shards whose token ids come from another tokenizer than the one this run resolves (`tokenizer_file`,
    or $MQA_TOKENIZER_FILE / the cache): a ConfigError naming the set and both fingerprints."""
    path = resolve_tokenizer_file(tokenizer_file)
    fingerprint = QwenTokenizer.from_file(path).fingerprint
    for shard_set in sets:
        if shard_set.index.tokenizer_fingerprint != fingerprint:
            raise ConfigError(
                f"shard set {shard_set.name!r} ({shard_set.root}) was built with tokenizer "
                f"{shard_set.index.tokenizer_fingerprint[:16]} but this run's tokenizer {path} is {fingerprint[:16]}; "
                "rebuild the shards with mqa-build-shards or point MQA_TOKENIZER_FILE at the tokenizer they used")


def apply_stage(model: nn.Module, config: TrainConfig, layout: ParallelLayout) -> FreezeReport:
    """Apply the stage's freeze masks to this rank's stage and return the report of the whole replica.

    At PP>1 a rank holds only part of the model, so the whole-model checks run on the reports of all pipeline stages,
    gathered over the pipeline group; every rank raises alike.
    """
    whole = layout.pipeline_parallel == 1
    report = apply_freeze(model, config.stage, require_trainable=whole, require_every_pattern=whole)
    if whole:
        return report
    from megatron.core import parallel_state

    reports: list[FreezeReport | None] = [None] * layout.pipeline_parallel
    dist.all_gather_object(reports, report, group=parallel_state.get_pipeline_model_parallel_group())
    combined = FreezeReport.combine(reports)
    combined.raise_for_unmatched_patterns()
    combined.raise_if_nothing_trainable()
    return combined
