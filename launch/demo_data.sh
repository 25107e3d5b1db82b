#!/usr/bin/env bash
# The demo's data: real multilingual speech -> manifests -> webdataset shards.
#   bash launch/demo_data.sh [OUT_DIR] [--from-manifests]          (default runs/demo)
# Fetches and verifies the Qwen tokenizer file; fetches Debian's Asterisk prompt recordings (en/es/fr/it) and writes
# manifests with a held-out split by prompt (prompts that share a transcript in any language go together):
# transcription, translation (X->en, en->X), language identification, ChatML questions about one or two
# recordings and pure-text instructions, all from the same labels; then builds the shards of each split, whole
# (`train`, `heldout`) and per demo stage (`*_pretrain`: the tag tasks of stage 1, `*_text`: the text-only stage, whose
# manifest also holds the tag-format rows with each clip's transcript in place of its audio, `*_copy`: the copy stage's
# random word sequences).
# Re-running is cheap: the manifests come out identical and finished shards are kept.
# --from-manifests skips the recordings' download: the manifests and clips already under OUT_DIR/manifests (copied
# from a machine with network access, with the tokenizer file in the cache or named by MQA_TOKENIZER_FILE) become
# the shards.
set -euo pipefail
out=runs/demo
fetch=true
for argument in "$@"; do
    case "$argument" in
        --from-manifests) fetch=false ;;
        -*) echo "launch/demo_data.sh: unknown option $argument; use [OUT_DIR] [--from-manifests]" >&2; exit 2 ;;
        *) out="$argument" ;;
    esac
done

if $fetch; then
    mqa-fetch-tokenizer
    mqa-prepare-asterisk --out "$out/manifests"
elif [ ! -f "$out/manifests/train.jsonl" ]; then
    echo "launch/demo_data.sh: --from-manifests, but $out/manifests/train.jsonl does not exist; copy the manifests" \
         "folder of a run on a machine with network access there" >&2
    exit 2
fi
for split in train heldout; do
    for part in "" _pretrain _text _copy; do
        mqa-build-shards --manifest "$out/manifests/$split$part.jsonl" --out "$out/shards/$split$part" \
            --workers "$(nproc)"
    done
done
echo "shards: $out/shards/{train,heldout}{,_pretrain,_text,_copy} (index.json, rejects.jsonl);" \
     "manifests: $out/manifests"
