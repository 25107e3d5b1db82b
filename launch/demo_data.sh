#!/usr/bin/env bash
# The main job while training is being built: real multilingual speech -> training shards -> one epoch read back.
#   bash launch/demo_data.sh [OUT_DIR]          (default runs/demo)
# Steps: fetch and verify the Qwen tokenizer file; fetch Debian's Asterisk prompt recordings (en/es/fr/it) and write
# transcription / translation / language-identification manifests with a held-out split by prompt name; build
# webdataset shards of both splits; read one epoch of the training shards as 2 data-parallel ranks x 2 workers.
set -euo pipefail
out="${1:-runs/demo}"

mqa-fetch-tokenizer
mqa-prepare-asterisk --out "$out/manifests"
for split in train heldout; do
    mqa-build-shards --manifest "$out/manifests/$split.jsonl" --out "$out/shards/$split" --workers "$(nproc)"
done
mqa-loader-dry-run "$out/shards/train" --dp-size 2 --workers 2 --max-batch-tokens 8192 --max-batch-frames 24000
echo "shards: $out/shards/{train,heldout} (index.json, rejects.jsonl); manifests: $out/manifests"
