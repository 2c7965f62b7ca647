#!/usr/bin/env bash
# Run a distributed Hyperband search as a SLURM job array: task 0 is the
# chief, every other task is a worker. Submit it from the repository root:
#
#   RUN_DIR=/shared/runs/quick sbatch --array=0-4 examples/distributed/slurm_array.sh
#
# That starts the chief and four workers. RUN_DIR must be on a file system
# that every node mounts, because the workers write the trial checkpoints
# that later Hyperband rounds load and the chief refits from.
# Task 0 writes its host name to RUN_DIR/chief-host-<array job id>; the
# workers wait for that file and connect to the host it names. The chief
# listens on PORT and PORT+1 of that host, so those ports must be open
# between the nodes, and gRPC there is neither authenticated nor encrypted.
#
# Environment variables (sbatch passes the submitting shell's environment on):
#   RUN_DIR             the shared run folder (required)
#   STUDY_OPTIONS       the study's settings, the same for every task, split
#                       at spaces (default "--preset quick")
#   PORT                the chief's first port (default 50051)
#   OUT                 the chief's site (default RUN_DIR/site)
#   PYTHON              the Python interpreter (default python)
#   CHIEF_WAIT_SECONDS  how long a worker waits for the host file (default 3600)
#
#SBATCH --job-name=study-search
#SBATCH --array=0-2
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

: "${RUN_DIR:?set RUN_DIR to a run folder on a file system that every node mounts}"
: "${SLURM_ARRAY_JOB_ID:?submit this script with sbatch --array}"
: "${SLURM_ARRAY_TASK_ID:?submit this script with sbatch --array}"
port=${PORT:-50051}
out=${OUT:-$RUN_DIR/site}
python=${PYTHON:-python}
chief_wait_seconds=${CHIEF_WAIT_SECONDS:-3600}
read -r -a study_options <<<"${STUDY_OPTIONS:---preset quick}"

# SLURM runs a copy of this script from its spool folder, so the repository
# is the folder sbatch was called from.
cd "${SLURM_SUBMIT_DIR:-.}"
host_file="$RUN_DIR/chief-host-$SLURM_ARRAY_JOB_ID"

run_chief() {
    mkdir -p "$RUN_DIR"
    # Write to a temporary name first, so a worker never reads half a name.
    hostname >"$host_file.tmp"
    mv "$host_file.tmp" "$host_file"
    exec "$python" run_study.py --role chief --chief-address "0.0.0.0:$port" \
        --run-dir "$RUN_DIR" --out "$out" "${study_options[@]}"
}

wait_for_chief_host() {
    local waited=0
    until [[ -s $host_file ]]; do
        if ((waited >= chief_wait_seconds)); then
            echo "error: $host_file did not appear within $chief_wait_seconds s;" \
                "check that task 0 of job $SLURM_ARRAY_JOB_ID started" >&2
            exit 1
        fi
        sleep 5
        waited=$((waited + 5))
    done
}

run_worker() {
    wait_for_chief_host
    local chief_host
    chief_host=$(<"$host_file")
    exec "$python" run_study.py --role worker --chief-address "$chief_host:$port" \
        --worker-id "worker-$SLURM_ARRAY_TASK_ID" --run-dir "$RUN_DIR" "${study_options[@]}"
}

if [[ $SLURM_ARRAY_TASK_ID == 0 ]]; then
    run_chief
else
    run_worker
fi
