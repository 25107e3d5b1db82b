"""Where training runs: device choice, the CPU runtime layer for megatron-core, and the process groups.

Reading order:
- `cpu`: `select_device("cuda" | "cpu" | "auto")` decides from the real machine (never CPU silently when "cuda" was
  asked for); `install_cpu_runtime()` then redirects megatron-core's CUDA calls to CPU so the same schedules, DDP,
  distributed optimizer and RNG tracker run under gloo. That is what lets every tensor/pipeline/data-parallel layout
  be tested on CPU against a single-process run.
- `parallel`: `initialize_parallel(tp, pp, device, seed)` reads the launcher's variables (torchrun, the DeepSpeed
  launcher, or srun's SLURM_* ones), joins the processes (gloo on CPU, nccl on GPU), builds megatron-core's parallel
  state and seeds its RNG tracker, returning a `ParallelLayout`; `shutdown_parallel()` ends every rank cleanly.

Engine settings the CPU path needs beyond this layer (they belong to the model config): `batch_p2p_comm=False`
(batched p2p on gloo gives wrong results in the interleaved schedule), no `sequence_parallel` with local specs, and
one intra-op thread per rank (OMP_NUM_THREADS=1).
"""
