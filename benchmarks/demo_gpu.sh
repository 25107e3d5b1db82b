#!/usr/bin/env bash
# The main job's recipe with a larger model on one GPU (configs/demo_gpu: 8 x 512 decoder, 4 x 384 encoder, bf16),
# at most 5 minutes of training in all, then the same evaluation and report as the CPU demo (WER per language, BLEU,
# language-id accuracy, own-vs-swapped audio loss).
#   bash benchmarks/demo_gpu.sh [OUT_DIR] [launch/demo.sh options]     (default runs/demo_gpu; from the repo root)
# e.g. `--eval-samples 600` to decode part of the held-out set, `--from-manifests` on a machine without network
# access (launch/demo_data.sh). Prints the metrics table, the wall time of each step and where the files are.
set -euo pipefail
out=runs/demo_gpu
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
    out="$1"
    shift
fi
started=$(date +%s)
bash "$(dirname "${BASH_SOURCE[0]}")/../launch/demo.sh" "$out" --configs configs/demo_gpu --nproc 1 "$@" 2>&1 |
    while IFS= read -r line; do
        if [[ "$line" == "== "* ]]; then
            echo "[$(( $(date +%s) - started )) s] ${line#== }"
        else
            echo "$line"
        fi
    done
echo "[$(( $(date +%s) - started )) s] done: data, training stages, evaluation and report"
