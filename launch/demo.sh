#!/usr/bin/env bash
# The main job: the Qwen-Audio recipe end to end on real multilingual speech with the CPU-sized model.
#   bash launch/demo.sh [OUT_DIR] [--steps COPY,TEXT,STAGE1,STAGE2] [--eval-samples N] [--configs DIR] [--nproc N]
#                       [--from-manifests]
# (defaults: runs/demo, the steps of DIR's stage configs, every held-out sample, DIR configs/demo, 2 processes; run
# from the repository root). --from-manifests: see launch/demo_data.sh (a machine without network access).
# configs/demo_gpu (with --nproc 1) is the same recipe with a larger model on one GPU, at most 5 minutes of training.
# 1. launch/demo_data.sh: real speech (Debian's Asterisk prompts, en/es/fr/it) -> manifests -> shards;
# 2. copy_pretrain, TEXT ONLY: the demo has no pretrained weights (it runs offline); the decoder first learns to copy
#    what stands before its tags, from random word sequences in place of the audio and as the transcript;
#    text_pretrain, TEXT ONLY: the decoder then learns the languages of the training split's transcripts and
#    translations from pure-text instructions and from the tag-format rows with each clip's transcript in place of
#    its audio (held-out prompts never enter); in both the audio encoder is frozen and unused;
# 3. stage1: multi-task pretraining (transcription, translation, language identification), audio encoder trained
#    under the frozen decoder;
# 4. stage2: supervised fine-tuning on everything (tag tasks, ChatML about one or two recordings, text), decoder
#    trained, audio encoder frozen;
# 5. mqa-eval: greedy decoding of the held-out shards, WER/CER, BLEU, language-id accuracy, own-vs-swapped audio loss;
# 6. mqa-report: loss plots per stage and task, report.md, the tables printed.
# Every stage runs 2 CPU processes at TP=2 (configs/demo) with checkpoints, metrics.jsonl and an offline wandb run in
# its run directory. Interrupted? Run the same command again: each stage resumes from its newest checkpoint
# (resume: auto) and a finished stage only reloads it.
set -euo pipefail
out=runs/demo
steps=()
eval_samples=()
configs=configs/demo
nproc=2
data_options=()
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) IFS=, read -r -a steps <<< "$2"; shift 2 ;;
        --eval-samples) eval_samples=(--max-samples "$2"); shift 2 ;;
        --configs) configs="$2"; shift 2 ;;
        --nproc) nproc="$2"; shift 2 ;;
        --from-manifests) data_options=(--from-manifests); shift ;;
        -*) echo "launch/demo.sh: unknown option $1; use [OUT_DIR] [--steps A,B,C,D] [--eval-samples N]" \
                 "[--configs DIR] [--nproc N] [--from-manifests]" >&2; exit 2 ;;
        *) out="$1"; shift ;;
    esac
done
here="$(dirname "${BASH_SOURCE[0]}")"

bash "$here/demo_data.sh" "$out" "${data_options[@]}"

stages=(copy_pretrain text_pretrain stage1 stage2)
train_shards=(train_copy train_text train_pretrain train)
heldout_shards=(heldout_copy heldout_text heldout_pretrain heldout)
if [ "${#steps[@]}" -gt 0 ] && [ "${#steps[@]}" -ne "${#stages[@]}" ]; then
    echo "launch/demo.sh: --steps needs ${#stages[@]} counts (${stages[*]}), got ${#steps[@]}" >&2
    exit 2
fi
for index in "${!stages[@]}"; do
    name="${stages[$index]}"
    overrides=("run_dir=$out/$name" "data.train=[{path_or_url: $out/shards/${train_shards[$index]}}]"
               "data.heldout=[{path_or_url: $out/shards/${heldout_shards[$index]}}]")
    if [ "$index" -gt 0 ]; then overrides+=("init_from=$out/${stages[$((index - 1))]}"); fi
    if [ "${#steps[@]}" -gt 0 ]; then
        count="${steps[$index]}"
        overrides+=("steps=$count" "optimizer.warmup_steps=$(( count > 10 ? count / 10 : 1 ))"
                    "eval_interval=$count" "save_interval=$count" "log_interval=$(( count > 10 ? 10 : 1 ))")
    fi
    echo "== $name"
    bash "$here/pretrain.sh" "$configs/$name.yaml" --nproc "$nproc" "${overrides[@]}"
done

echo "== evaluation"
mqa-eval "$out/stage2" --shards "$out/shards/heldout" --out "$out/eval" "${eval_samples[@]}" > "$out/eval.log"
report_stages=()
for name in "${stages[@]}"; do report_stages+=(--stage "$name=$out/$name"); done
mqa-report "${report_stages[@]}" --eval "$out/eval" --out "$out/report"
echo "per-sample outputs: $out/eval/samples.jsonl; stage runs (checkpoints, metrics.jsonl, wandb):" \
    "${stages[@]/#/$out/}"
