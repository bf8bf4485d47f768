#!/usr/bin/env bash
# The GPU measurements in short calls, on a machine where nasframe is a plain copy of the checkout (nothing
# pip-installed: the project goes on PYTHONPATH, its missing packages travel as wheels, the data as files).
#
#   scripts/gpu_session.sh kit                       # here: wheels into .whl/, data into .gpudata/ (git-ignored)
#   scripts/gpu_session.sh run OUT [SECONDS] [--no-bench]    # there
#   scripts/gpu_session.sh zero_cost OUT [SECONDS]           # there: NB201 zero-cost proxies, resumed (see below)
#
# `run` first times scripts/bench_gpu.py at full scale (unless --no-bench), then spends the rest of SECONDS
# (default 540) on the full NAS-Bench-201 protocol (configs/experiment/nb201_cifar10_gpu.yaml with the fast
# training and scoring options): the epochs that fit at the epoch time just measured, then, once trained,
# selection and the ranking of all 15,625 archs, which stops at the time left and keeps its scores. Everything
# the protocol has so far is in runs/experiments/nb201_cifar10_gpu, which comes back as OUT/run.tgz: unpack it
# here into runs/experiments/, carry that folder to the next call, and the same command continues.
# OUT gets at most 7 files: bench_gpu_cuda.{md,json}, session.log, run.tgz and the protocol's report (md/json/png).
set -euo pipefail
cd "$(dirname "$0")/.."

kit() {
    mkdir -p .whl .gpudata/nb201 .gpudata/cifar10
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
        hydra-core==1.3.8 omegaconf==2.3.1 nas-bench-201==2.1 hydra-joblib-launcher==1.2.0
    python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3  # published as a source archive only
    local data=${NASFRAME_DATA:-../shared/data}
    cp "$data/nb201/accuracy.csv" .gpudata/nb201/
    cp "$data/cifar10/cifar10-jpeg.tar.gz" .gpudata/cifar10/
    du -sh .whl .gpudata
}

seconds_since() { echo $(($(date +%s) - $1)); }

environment() {  # the kit's wheels on the path (nothing installed), the data, the device
    if [ -d .whl ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site:$PWD
    else
        export PYTHONPATH=$PWD
    fi
    export NASFRAME_DATA=${NASFRAME_DATA:-$PWD/.gpudata} NASFRAME_CACHE=${NASFRAME_CACHE:-/tmp/nfcache} PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
}

# Zero-cost proxies of NB201 cells on the GPU for SECONDS, continuing from the values committed in
# results/zero_cost_nb201/: OUT/zero_cost_nb201/ comes back with every values file and the report; copy it over
# results/zero_cost_nb201/ here and commit.
zero_cost() {
    local out=${1:?usage: gpu_session.sh zero_cost OUT [SECONDS]} budget=${2:-540}
    mkdir -p "$out/zero_cost_nb201"
    exec > >(tee -a "$out/session.log") 2>&1
    environment
    cp results/zero_cost_nb201/values_*.jsonl* "$out/zero_cost_nb201/" 2>/dev/null || true  # caches or snapshots
    python3 scripts/zero_cost_ranking.py --target nb201 --device cuda --out "$out/zero_cost_nb201" \
        --stop-after-s $((budget - 90))
}

run() {
    local out=${1:?usage: gpu_session.sh run OUT [SECONDS] [--no-bench]} budget=${2:-540} bench=${3:-}
    local start run_dir=runs/experiments/nb201_cifar10_gpu epochs_total=250
    start=$(date +%s)
    mkdir -p "$out"
    exec > >(tee -a "$out/session.log") 2>&1
    environment

    local bench_json=$out/bench_gpu_cuda.json
    if [ "$bench" != "--no-bench" ]; then
        # the bench rewrites its table after each measurement: stopped by the timeout, it leaves what it measured
        timeout $((budget - 60)) python3 scripts/bench_gpu.py --device cuda --out "$out" --score-archs 20 --workers 8 \
            || echo "bench_gpu.py stopped (status $?): $bench_json holds the measurements it finished"
    else
        bench_json=results/bench_gpu_cuda.json  # an earlier call's, committed
    fi
    local epoch_s done_epochs=0 resume=() left epochs stop rank_s
    epoch_s=$(python3 -c "import json; print(json.load(open('$bench_json'))['epoch_seconds'].get('fast/uniform', ''))" \
        2>/dev/null || true)
    if [ -z "$epoch_s" ]; then
        echo "no fast/uniform epoch time in $bench_json: no protocol this call"
        return 0
    fi
    if [ -f "$run_dir/checkpoint.pt" ]; then
        done_epochs=$(python3 -c "import torch; print(torch.load('$run_dir/checkpoint.pt', map_location='cpu', weights_only=False)['epoch'])")
        resume=(--resume)
    fi
    left=$((budget - $(seconds_since "$start") - 90))  # the data, the start, the checkpoint, the archive
    # bench_gpu's epoch is 50k images, the protocol's (search split) 25k; 20 % margin
    epochs=$(python3 -c "print(max(0, min($epochs_total - $done_epochs, int($left / ($epoch_s / 2 * 1.2)))))")
    stop=$((done_epochs + epochs))
    rank_s=$(python3 -c "print(max(30, int($left - $epochs * $epoch_s / 2 * 1.2 - 120)))")  # 120 s: selection
    echo "protocol: $done_epochs of $epochs_total epochs done; training to $stop, then ranking for ${rank_s}s if trained"
    if [ "$stop" -gt 0 ]; then
        python3 scripts/nb201_ranking.py --experiment nb201_cifar10_gpu --run-dir "$run_dir" --num-archs 0 \
            --out "$out" --rank-seconds "$rank_s" "${resume[@]}" -- \
            trainer.precision=bf16 trainer.channels_last=true trainer.sgd_impl=fused trainer.cudnn_benchmark=true \
            trainer.finite_check_every=50 trainer.progress=false evaluator.fold_bn=true evaluator.precision=bf16 \
            evaluator.channels_last=true "trainer.stop_after_epoch=$stop"
        tar -czf "$out/run.tgz" -C runs/experiments nb201_cifar10_gpu
    fi
    echo "call took $(seconds_since "$start") s"
}

case "${1:-}" in
    kit) kit ;;
    run) shift; run "$@" ;;
    zero_cost) shift; zero_cost "$@" ;;
    *) echo "usage: $0 kit | run OUT [SECONDS] [--no-bench] | zero_cost OUT [SECONDS]" >&2; exit 2 ;;
esac
