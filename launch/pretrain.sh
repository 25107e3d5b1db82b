#!/usr/bin/env bash
# Stage 1 (multi-task pretraining: the audio encoder trains under the frozen LLM), or any run config.
#   bash launch/pretrain.sh CONFIG [--nproc N] [key.path=value ...]       (starts torchrun itself)
#   deepspeed [--hostfile H] --no_python launch/pretrain.sh CONFIG [...]  (one rank per GPU of every host)
#   srun launch/pretrain.sh CONFIG [...]                                  (inside an sbatch job)
# See launch/train.sh for how the launcher is told apart, and configs/ for the run configs.
exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
