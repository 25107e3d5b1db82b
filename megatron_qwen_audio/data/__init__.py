"""The data path from shards to batches: shard format, epoch planning, reading, batching and the training loader.

Reading order (each module has one job):
- `shard_format`: what the offline builder writes (webdataset tars + `index.json`) and the loader reads.
- `shard_sets`: where each set lives (folder, URL prefix, or `pipe:` template), its mixture weight, checked indexes.
- `length_batching`: length-aware batching under a budget (padded tokens, summed mel frames, batch size).
- `epoch_plan`: the whole epoch, from index metadata alone: mixture -> shuffled shards laid end to end and cut into
  equal-cost runs of samples, one per (rank, worker) slot -> shuffle buffer -> length-aware batches -> equal steps.
- `shard_reader`: streams exactly the samples a plan names (webdataset `gopen` + tar iteration), raw bytes only,
  passing over the rest of a shard unkept and closing it after its last needed sample.
- `sample_decoding`, `collate`: npy members -> arrays -> the model's batch (`AudioTextBatch`, fields documented there).
- `loader_config`, `loader`: `AudioTextLoader(sets, LoaderConfig, dp_rank, dp_size)`, iterated over epochs with a
  torch DataLoader (one plan slot per worker), with `state_dict()` / `load_state_dict()` for exact resume.

Guarantees, all following from the epoch plan being a pure function of (indexes, weights, seed, epoch, dp size,
workers, batching settings):
- determinism: the same inputs give the same batches in the same order; other epochs give other orders;
- every sample of the epoch's mixture is read exactly once across all ranks and workers, except the remainder;
- every rank takes the same number of steps per epoch (`steps_per_epoch(epoch)`);
- resume: the state is {epoch, step, plan fingerprint, plan inputs}; a restored loader continues with exactly the
  batches the uninterrupted run would have produced, never opening fully consumed shards and never decoding consumed
  samples; other data, seed, world size, workers or batching settings are refused.

Remainder policy: the epoch's samples are split between the (rank, worker) slots at sample granularity, into runs of
equal expected batch load (a slot reads whole shards plus at most part of one at each end), so slots differ only by
how batching packs them: a batch or so each. Every slot keeps as many batches as the slot with fewest; the others'
surplus batches (the last ones of the slot's shuffled order) are dropped for that epoch and listed in
`EpochPlan.dropped`. A new epoch reshuffles, so a sample dropped once is read in later epochs. Dropping stays small
when each slot fills many batches, however few shards there are; the loader warns when it exceeds 10% of an epoch.

Mixture weights: set k contributes round(w_k / sum(w) * N) samples per epoch (N = all samples of all sets), as whole
passes over its shards plus a seeded random subset of its shards for the rest. Weights proportional to set sizes
read every shard exactly once per epoch.
"""
