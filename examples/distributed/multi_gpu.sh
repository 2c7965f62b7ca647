#!/usr/bin/env bash
# Run a distributed Hyperband search on one machine: one worker per GPU and
# the chief, which refits on all GPUs once both searches have ended.
#
#   examples/distributed/multi_gpu.sh --preset full --data path/to/cifar10-jpeg.tar.xz
#
# Every argument goes unchanged to the chief and to each worker, so they all
# use the same settings and the same run folder (--run-dir, or runs/<preset>/).
# The chief's output stays on this terminal. Each worker's terminal output
# goes to $LOG_DIR/worker-gpu<N>.log, and its study log to
# RUN_DIR/study-gpu-<N>.log as for any worker. When the chief exits, successfully or not, the
# script stops the workers that are still running.
#
# Environment: PORT (chief's first port, default 50051; it also uses PORT+1),
# LOG_DIR (default runs/distributed-logs), PYTHON (default python).
set -euo pipefail

port=${PORT:-50051}
log_dir=${LOG_DIR:-runs/distributed-logs}
python=${PYTHON:-python}

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# nvidia-smi numbers GPUs in PCI bus order; this makes CUDA use the same numbers.
export CUDA_DEVICE_ORDER=PCI_BUS_ID
# Only lines that are GPU indices count: without a GPU, nvidia-smi prints a
# message on stdout instead.
mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader | grep -E '^[0-9]+$')
if [[ ${#gpus[@]} -eq 0 ]]; then
    echo "error: nvidia-smi lists no GPU, or is not installed; start the chief and" \
        "the workers by hand as docs/distributed.md shows" >&2
    exit 1
fi
mkdir -p "$log_dir"

pids=()

stop_processes() {
    # SIGTERM lets run_study.py stop at its next batch; wait reaps each process.
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop_processes EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for gpu in "${gpus[@]}"; do
    CUDA_VISIBLE_DEVICES=$gpu "$python" run_study.py --role worker \
        --chief-address "127.0.0.1:$port" --worker-id "gpu-$gpu" "$@" \
        >"$log_dir/worker-gpu$gpu.log" 2>&1 &
    pids+=("$!")
    echo "worker gpu-$gpu started on GPU $gpu (pid $!), log: $log_dir/worker-gpu$gpu.log"
done

# Every GPU is visible to the chief, for its refits. Memory growth keeps it
# from reserving the GPUs' memory while the workers train on them.
TF_FORCE_GPU_ALLOW_GROWTH=true "$python" run_study.py --role chief \
    --chief-address "127.0.0.1:$port" "$@" &
pids+=("$!")
# The chief runs in the background so that this shell can handle a signal
# while the chief runs. wait returns the chief's exit status, which set -e
# makes the script's own.
wait "$!"
