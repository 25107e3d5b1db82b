"""Training: what a run is and what each stage of it trains.

Reading order (each module has one job):
- `config`: the run configuration as documented dataclasses (model shape and presets, parallel layout and batch
  arithmetic, data, optimizer, stage, logging), `load_config(path, overrides)` and `validate(config, world_size)`.
- `config_yaml`: how YAML files (with `base:` inheritance) and `key.path=value` overrides become those dataclasses,
  with errors that point at the file and line.
- `freeze`: a stage's trainable/frozen patterns -> requires_grad on every parameter, and the start-up table of
  trainable and frozen parameters per module.
"""
