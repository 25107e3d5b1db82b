#!/usr/bin/env bash
# Start `mqa-train CONFIG [key=value ...]` for this rank, or start the ranks first. launch/pretrain.sh and
# launch/sft.sh run this script; it tells the three ways it can be entered apart by the environment:
#   under a launcher (DeepSpeed's or torchrun: RANK is set)   -> exec mqa-train for this rank; the DeepSpeed
#       launcher's leading --local_rank=N is dropped (LOCAL_RANK says the same);
#   under srun (SLURM_PROCID is set)                           -> export MASTER_ADDR (first host of the job) and
#       MASTER_PORT (from the job id) unless set, then exec mqa-train for this rank;
#   plainly (`bash launch/pretrain.sh CONFIG [--nproc N] ...`) -> start torchrun --standalone with one process per
#       visible GPU, or N CPU processes with --nproc N (default 1 without a GPU), each running this script again.
# CPU ranks run one intra-op thread each (OMP_NUM_THREADS=1) unless OMP_NUM_THREADS is set.
set -euo pipefail

if [[ "${1:-}" == --local_rank=* ]]; then
    shift
fi

visible_gpus() {
    # the GPUs nvidia-smi lists, at most as many as CUDA_VISIBLE_DEVICES names (the DeepSpeed launcher sets that
    # variable even on a machine without GPUs)
    local found=0
    if command -v nvidia-smi >/dev/null 2>&1; then
        found="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
    fi
    if [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
        local named
        named="$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c . || true)"
        found=$(( named < found ? named : found ))
    fi
    echo "$found"
}

run_rank() {
    if [[ "$(visible_gpus)" -eq 0 ]]; then
        export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
    fi
    exec mqa-train "$@"
}

if [[ -n "${RANK:-}" ]]; then
    run_rank "$@"
fi

if [[ -n "${SLURM_PROCID:-}" ]]; then
    if [[ -z "${MASTER_ADDR:-}" ]]; then
        MASTER_ADDR="$(scontrol show hostnames "${SLURM_JOB_NODELIST:?SLURM_JOB_NODELIST is not set; start the ranks with srun}" | head -n 1)"
        export MASTER_ADDR
    fi
    export MASTER_PORT="${MASTER_PORT:-$((20000 + ${SLURM_JOB_ID:-0} % 20000))}"
    run_rank "$@"
fi

nproc=""
args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --nproc) nproc="${2:?--nproc needs a number of processes}"; shift 2 ;;
        --nproc=*) nproc="${1#--nproc=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
if [[ ${#args[@]} -eq 0 ]]; then
    echo "usage: $0 CONFIG [--nproc N] [key.path=value ...]" >&2
    exit 2
fi
gpus="$(visible_gpus)"
if [[ -z "$nproc" ]]; then
    nproc=$(( gpus > 0 ? gpus : 1 ))
fi
if ! [[ "$nproc" =~ ^[1-9][0-9]*$ ]]; then
    echo "$0: --nproc $nproc is not a positive number of processes" >&2
    exit 2
fi
if [[ "$gpus" -eq 0 ]]; then
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
fi
exec torchrun --standalone --nproc_per_node "$nproc" --no-python "${BASH_SOURCE[0]}" "${args[@]}"
