#!/usr/bin/env bash
# Benchmarks on a lent GPU machine that has JAX and PyTorch but no TensorFlow.
#
#   bash benchmarks/gpu_run.sh STAGE [MINUTES]
#
# Run from the repository root.  Keras and its two missing dependencies (namex, optree)
# travel as wheels in .whl/ (see the README of the device tool); they are installed to
# /tmp/site.  Everything a stage writes goes under $OUT (default: ./gpu-out).
#
# Stages:
#   check   the GPU, the GPU-only test, cnnkit-lint --benchmark on the bundled example
#   rules   benchmarks/bench_rules.py, full grid + VGG16 cases, JAX, float32; resumable:
#           carries on from benchmarks/results/ and stops starting cases after MINUTES
#   bf16    the same grid in bfloat16 (resumable likewise)
#   torch   the same grid on the torch backend (eager), for comparison
#   tests   the backend-agnostic tests (every layer in keras.ops) on the GPU
#   latency the latency model's measurements (benchmarks/latency_gpu.py): the calibration
#           grid, its check pairs, the rule grid (held-out shapes first) and MobileNetV2 /
#           ResNet50, into $OUT/latency_gpu.json; stops starting items after MINUTES
#           (default 4.5 for this stage; the command is killed at MINUTES + 3).  Fit and
#           check here with: python tools/fit_latency_profiles.py h200 <that file>
set -u
stage=${1:?stage: check, rules, bf16, torch, tests or latency}
minutes=${2:-7}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 3
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
export KERAS_BACKEND=${KERAS_BACKEND:-jax}

resume_from_repo() {   # start from the results on file, so the grid fills across calls
    mkdir -p "$OUT/b/results"
    cp -n benchmarks/results/rules_*.json "$OUT/b/results/" 2>/dev/null || true  # keep newer
}

case "$stage" in
check)
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
        --format=csv | tee "$OUT/nvidia-smi.csv"
    python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
    python3 -m pytest -p no:cacheprovider -q -rs -s -m gpu tests/test_bench.py 2>&1 \
        | tee "$OUT/pytest_gpu.txt"
    python3 -m keras_cnnkit.lint examples/models/inefficient_cnn.h5 --benchmark \
        >"$OUT/cli_benchmark.txt" 2>"$OUT/cli_benchmark.err"
    echo "cnnkit-lint --benchmark exit $?"
    python3 -m keras_cnnkit.lint examples/models/inefficient_cnn.h5 --benchmark --train \
        --format json >"$OUT/cli_benchmark_train.json" 2>>"$OUT/cli_benchmark.err"
    echo "cnnkit-lint --benchmark --train --format json exit $?"
    tail -n 40 "$OUT/cli_benchmark.txt"
    ;;
rules)
    resume_from_repo
    python3 benchmarks/bench_rules.py --named --resume --max-minutes "$minutes" \
        --out-dir "$OUT/b"
    ;;
bf16)
    resume_from_repo
    python3 benchmarks/bench_rules.py --named --resume --max-minutes "$minutes" \
        --dtype bfloat16 --out-dir "$OUT/b"
    ;;
torch)
    resume_from_repo
    KERAS_BACKEND=torch python3 benchmarks/bench_rules.py --named --resume \
        --max-minutes "$minutes" --out-dir "$OUT/b"
    ;;
tests)
    XLA_PYTHON_CLIENT_PREALLOCATE=false timeout $((${minutes%.*} * 60)) python3 -m pytest \
        -p no:cacheprovider -q -rs -m "backend_agnostic or gpu" 2>&1 | tee "$OUT/pytest_backend_agnostic.txt" | tail -n 15
    ;;
latency)
    minutes=${2:-4.5}
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
        --format=csv | tee "$OUT/nvidia-smi-latency.csv"
    timeout $(( ${minutes%.*} * 60 + 180 )) python3 benchmarks/latency_gpu.py \
        --out "$OUT/latency_gpu.json" --max-minutes "$minutes" --models 2>&1 \
        | tee "$OUT/latency_gpu.log" | tail -n 25
    ;;
*)
    echo "unknown stage $stage" >&2
    exit 2
    ;;
esac
