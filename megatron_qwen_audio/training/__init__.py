"""Training: what a run is and what each stage of it trains.

Reading order (each module has one job):
- `config`: the run configuration as documented dataclasses (model shape and presets, parallel layout and batch
  arithmetic, data, optimizer, stage, logging), `load_config(path, overrides)` and `validate(config, world_size)`.
- `config_yaml`: how YAML files (with `base:` inheritance) and `key.path=value` overrides become those dataclasses,
  with errors that point at the file and line.
- `freeze`: a stage's trainable/frozen patterns -> requires_grad on every parameter, and the start-up table of
  trainable and frozen parameters per module.
- `optimizer`: megatron DDP wrapping and the distributed Adam (no gradient buffers or state for frozen parameters).
- `lr_schedule`: warmup, then cosine / linear / constant decay, applied to the optimizer's groups each update.
- `metrics`: per-interval metrics to `metrics.jsonl` and wandb (offline unless WANDB_MODE says otherwise).
- `checkpointing`, `rng_state`: atomic, reshardable checkpoints (megatron distributed checkpointing) with RNG and
  loader state; `resume: auto` picks the newest complete one.
- `preemption`: SIGTERM / SIGUSR1 set a flag that all ranks agree on, so a preempted job saves before it exits.
"""
