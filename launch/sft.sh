#!/usr/bin/env bash
# Stage 2 (supervised fine-tuning: the LLM trains under the frozen audio encoder) from a stage-2 config, whose
# `init_from` names the stage-1 run it starts from. Entered like launch/pretrain.sh:
#   bash launch/sft.sh CONFIG [--nproc N] [key.path=value ...]
#   deepspeed --no_python launch/sft.sh CONFIG [...]        srun launch/sft.sh CONFIG [...]
exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
