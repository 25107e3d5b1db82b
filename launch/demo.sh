#!/usr/bin/env bash
# The main job: real multilingual speech -> training shards -> stage-1 training of the CPU-sized model.
#   bash launch/demo.sh [OUT_DIR] [STEPS]          (defaults: runs/demo, 40 steps; run from the repository root)
# 1. launch/demo_data.sh: Debian's Asterisk prompts (en/es/fr/it) -> transcription / translation / language-id
#    manifests with a held-out split -> webdataset shards -> one epoch read as 2 ranks x 2 workers;
# 2. stage 1 (decoder frozen, audio encoder trained) of the tiny model on those shards, 2 CPU processes at TP=2,
#    with held-out loss, metrics (JSONL + offline wandb) and checkpoints.
set -euo pipefail
out="${1:-runs/demo}"
steps="${2:-40}"
here="$(dirname "${BASH_SOURCE[0]}")"

bash "$here/demo_data.sh" "$out"
run_dir="$out/tiny_stage1"
bash "$here/pretrain.sh" configs/tiny_stage1.yaml --nproc 2 parallel.tensor_parallel=2 "steps=$steps" \
    "run_dir=$run_dir" "data.train=[{path_or_url: $out/shards/train}]" \
    "data.heldout=[{path_or_url: $out/shards/heldout}]"
echo "stage 1 done: metrics $run_dir/metrics.jsonl; checkpoints $run_dir/checkpoints; wandb (offline) $run_dir/wandb"
