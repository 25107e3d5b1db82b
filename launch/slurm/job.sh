#!/usr/bin/env bash
# The body of launch/slurm/pretrain.sbatch and sft.sbatch: `job.sh ENTRY CONFIG [key.path=value ...]` runs one srun
# step of ENTRY (launch/pretrain.sh or launch/sft.sh) with one rank per task, and requeues the job when SLURM warned
# of its end (`#SBATCH --signal=B:USR1@T` before the time limit, or `scancel --signal=USR1 --batch JOBID`).
#
# Why the step runs in the background: SLURM's B: signals reach only this batch shell, and bash runs a trap only
# once the foreground command has ended, so the warning would wait for the whole run. In the background, `wait`
# returns at once, the trap forwards USR1 to srun (which passes it to every task: each rank's PreemptionFlag fires),
# and the ranks save a checkpoint after their current step and exit 0. Exit 0 alone cannot tell "saved and stopped"
# from "finished", so the trap's own flag decides the requeue; the requeued job (same id, same run_dir) continues
# from that checkpoint through the config's `resume: auto`. A warning that arrives after the last step requeues a
# job that then only finds its training done.
set -uo pipefail

entry="${1:?usage: job.sh ENTRY CONFIG [key.path=value ...]}"
shift
if [[ -z "${SLURM_JOB_ID:-}" ]]; then
    echo "$0: SLURM_JOB_ID is not set; submit the job with sbatch (see launch/slurm/pretrain.sbatch)" >&2
    exit 2
fi
if [[ $# -eq 0 ]]; then
    echo "usage: sbatch $(basename "$entry" .sh).sbatch CONFIG [key.path=value ...]" >&2
    exit 2
fi

warnings=0
step_pid=""
forward_warning() {
    warnings=$((warnings + 1))
    echo "job ${SLURM_JOB_ID}: end-of-job warning (USR1): the ranks save a checkpoint after this step and stop" >&2
    if [[ -n "$step_pid" ]]; then
        kill -USR1 "$step_pid" 2>/dev/null || true
    fi
}
trap forward_warning USR1

echo "job ${SLURM_JOB_ID} (run $((${SLURM_RESTART_COUNT:-0} + 1))): ${SLURM_NTASKS} ranks on ${SLURM_JOB_NODELIST}:" \
     "$entry $*" >&2
# launch/train.sh, which ENTRY runs for each task, sets MASTER_ADDR to the first host of the job and MASTER_PORT from
# the job id (unless they are set): the same on every node, and on every run of a requeued job.
srun --kill-on-bad-exit=1 bash "$entry" "$@" &
step_pid=$!
if [[ "$warnings" -gt 0 ]]; then  # the warning came before step_pid was known
    kill -USR1 "$step_pid" 2>/dev/null || true
fi

# A trap interrupts `wait` (status 128 + signal); wait again after every warning until the step's own status is in
# (bash keeps the status of an ended background job for a later `wait`).
while true; do
    warnings_before="$warnings"
    wait "$step_pid"
    status=$?
    if [[ "$warnings" -eq "$warnings_before" ]]; then
        break
    fi
done

if [[ "$status" -ne 0 ]]; then
    echo "job ${SLURM_JOB_ID}: the training step failed (exit $status); not requeued" >&2
    exit "$status"
fi
if [[ "$warnings" -gt 0 ]]; then
    echo "job ${SLURM_JOB_ID}: checkpoint saved after the warning; requeueing (resume: auto continues from it)" >&2
    scontrol requeue "$SLURM_JOB_ID"
fi
