#!/usr/bin/env bash
# The demo's data: real multilingual speech -> manifests -> webdataset shards.
#   bash launch/demo_data.sh [OUT_DIR]          (default runs/demo)
# Fetches and verifies the Qwen tokenizer file; fetches Debian's Asterisk prompt recordings (en/es/fr/it) and writes
# manifests with a held-out split by prompt (prompts that share a transcript in any language go together):
# transcription, translation (X->en, en->X), language identification, ChatML questions about one or two
# recordings and pure-text instructions, all from the same labels; then builds the shards of each split, whole
# (`train`, `heldout`) and per demo stage (`*_pretrain`: the tag tasks of stage 1, `*_text`: the text-only stage, whose
# manifest also holds the tag-format rows with each clip's transcript in place of its audio).
# Re-running is cheap: the manifests come out identical and finished shards are kept.
set -euo pipefail
out="${1:-runs/demo}"

mqa-fetch-tokenizer
mqa-prepare-asterisk --out "$out/manifests"
for split in train heldout; do
    for part in "" _pretrain _text; do
        mqa-build-shards --manifest "$out/manifests/$split$part.jsonl" --out "$out/shards/$split$part" \
            --workers "$(nproc)"
    done
done
echo "shards: $out/shards/{train,heldout}{,_pretrain,_text} (index.json, rejects.jsonl); manifests: $out/manifests"
