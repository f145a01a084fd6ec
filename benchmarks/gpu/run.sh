#!/usr/bin/env bash
# One command on a GPU machine: build convext with its CUDA kernels, run the
# GPU tests, then time convext against cuDNN at equal layout (NCHW and
# channels_last) and equal TF32 setting for float32/bfloat16/float16, writing
# the benchmark's JSON and Markdown to benchmarks/results/ and every step's log
# to benchmarks/results/gpu_run/ (and to $OUT/ as well when $OUT is set).
#
#   bash benchmarks/gpu/run.sh              # everything
#   bash benchmarks/gpu/run.sh --dry-run    # print the plan: the commands, nothing run
#   bash benchmarks/gpu/run.sh --quick      # the benchmark's quick suite instead
#   bash benchmarks/gpu/run.sh --skip-build --skip-tests   # time again, reusing the build
#   bash benchmarks/gpu/run.sh -- --shapes 'resnet50.*'    # extra benchmark arguments
#
# TF32: the main run keeps torch's default for convs (TF32 on for float32, as
# F.conv2d), which both cuDNN and convext follow; a second float32 run with
# --no-tf32 gives full float32 on both sides (files tagged -no-tf32).
# Needs a CUDA build of torch and nvcc; uses no network. Fails loudly (exit 2)
# when torch sees no GPU, before building anything; exits 1 when any step fails.
# compute-sanitizer runs are in verify_cuda.sh; the modelled expectation to
# compare with is benchmarks/results/roofline-h100.md.
set -uo pipefail
cd "$(dirname "$0")/../.."

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  echo "options: --dry-run --quick --skip-build --skip-tests --skip-bench --no-models [-- BENCH ARGS]"
}

DRY=0 QUICK=0 BUILD=1 TESTS=1 BENCH=1 MODELS=1
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --quick) QUICK=1 ;;
    --skip-build) BUILD=0 ;;
    --skip-tests) TESTS=0 ;;
    --skip-bench) BENCH=0 ;;
    --no-models) MODELS=0 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

PY=${PYTHON:-python}
RES=benchmarks/results
LOGS=$RES/gpu_run
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-16}
export FORCE_CUDA=1
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}  # seconds per step: a hung GPU test must not hang the run
CUDA_TESTS=(tests/test_cuda.py tests/test_autocast.py)  # skip without a GPU; must pass here

BENCH_ARGS=(--device cuda --layouts nchw,channels_last --out "$RES" --no-progress)
[ "$QUICK" -eq 1 ] && BENCH_ARGS+=(--quick)
MAIN_ARGS=(--dtypes float32,bfloat16,float16 "${BENCH_ARGS[@]}")
[ "$MODELS" -eq 1 ] && MAIN_ARGS+=(--models)
NO_TF32_ARGS=(--dtypes float32 --no-tf32 "${BENCH_ARGS[@]}")

start=$(date +%s)
failed=()
note() {
  local line="[run.sh $(( $(date +%s) - start ))s] $*"
  echo "$line"
  [ "$DRY" -eq 1 ] || echo "$line" >>"$LOGS/steps.log"
}

# The command as one would type it: plain words as they are, others quoted.
shell_words() {
  local a
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./=,:+@%-]+$ ]]; then printf '%s ' "$a"; else printf "'%s' " "${a//\'/\'\\\'\'}"; fi
  done
}

# step NAME CMD...: run CMD with its output in $LOGS/NAME.log (dry run: print it).
step() {
  local name=$1
  shift
  if [ "$DRY" -eq 1 ]; then
    echo "$name: $(shell_words "$@")> $LOGS/$name.log"
    return 0
  fi
  note "$name: $*"
  timeout "$STEP_TIMEOUT" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  tail -5 "$LOGS/$name.log" | sed 's/^/    /'
  if [ "$rc" -ne 0 ]; then
    note "$name FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ", timed out after ${STEP_TIMEOUT}s")): see $LOGS/$name.log"
    failed+=("$name")
  fi
  return "$rc"
}

# The GPU check comes first: no GPU, no build, a clear message.
GPU_CHECK='import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA GPU "
             "(torch.cuda.is_available() is False)")
print(torch.cuda.get_device_name())'
if [ "$DRY" -eq 1 ]; then
  echo "# plan (dry run: nothing is run; TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST MAX_JOBS=$MAX_JOBS FORCE_CUDA=1)"
  echo "gpu-check: $PY -c '<torch.cuda.is_available(), else exit 2: no CUDA GPU>'"
else
  if ! gpu=$("$PY" -c "$GPU_CHECK" 2>&1); then
    echo "run.sh: no CUDA GPU: ${gpu##*$'\n'}." >&2
    echo "run.sh: this script builds convext with CUDA and times it against cuDNN on a GPU;" \
         "nothing was run. Use --dry-run to print the plan." >&2
    exit 2
  fi
  mkdir -p "$LOGS"
  : >"$LOGS/steps.log"
  note "GPU: $gpu"
  nvidia-smi >"$LOGS/nvidia-smi.txt" 2>&1
fi

# 1. Build in place (the checkout's convext, not the environment's): the
#    benchmark and the tests import it from here.
if [ "$BUILD" -eq 1 ]; then
  step build "$PY" setup.py build_ext --inplace &&
    step with-cuda "$PY" -c "import convext, sys; print(convext.__file__); sys.exit(0 if convext.with_cuda() else 'convext.with_cuda() is False: built without CUDA')"
  if [ "${#failed[@]}" -ne 0 ]; then
    note "build failed: nothing else runs"
    exit 1
  fi
fi

# 2. Tests: the CUDA-only files first (they skip without a GPU, so every one
#    must pass, none skip), then the rest of the suite on this machine.
if [ "$TESTS" -eq 1 ]; then
  step pytest-cuda "$PY" -m pytest -q -rs -p no:cacheprovider "${CUDA_TESTS[@]}" \
    --junitxml="$LOGS/pytest-cuda.xml"
  if [ "$DRY" -eq 0 ] && grep -q 'skipped="[1-9]' "$LOGS/pytest-cuda.xml" 2>/dev/null; then
    note "pytest-cuda FAILED: CUDA tests skipped on a GPU machine (see $LOGS/pytest-cuda.log)"
    failed+=(pytest-cuda-skipped)
  fi
  ignores=()
  for t in "${CUDA_TESTS[@]}"; do ignores+=(--ignore="$t"); done
  step pytest-rest "$PY" -m pytest tests -q -rs -p no:cacheprovider "${ignores[@]}" \
    --junitxml="$LOGS/pytest-rest.xml"
fi

# 3. Timings: convext vs cuDNN, both layouts, equal TF32 setting.
if [ "$BENCH" -eq 1 ]; then
  step bench "$PY" -m convext.bench "${MAIN_ARGS[@]}" "${EXTRA[@]}"
  step bench-no-tf32 "$PY" -m convext.bench "${NO_TF32_ARGS[@]}" "${EXTRA[@]}"
fi

[ "$DRY" -eq 1 ] && exit 0
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/gpu_run"
  cp -r "$LOGS"/. "$OUT/gpu_run/"
  # The result files the benchmark runs wrote ("wrote PATH" in their logs).
  sed -n 's/^wrote //p' "$LOGS"/bench*.log 2>/dev/null | while read -r f; do cp "$f" "$OUT/"; done
fi
if [ "${#failed[@]}" -ne 0 ]; then
  note "FAILED steps: ${failed[*]} (logs in $LOGS)"
  exit 1
fi
note "all steps passed; results in $RES, logs in $LOGS"
