#!/usr/bin/env bash
# GPU work inside one short lease (a 10-minute command, at most 8 files back):
# runs the named steps in order, each under a time limit that keeps the whole
# command inside DEADLINE seconds, and packs every log and result into one
# $OUT/<tag>.tgz at the end, even when a step failed or ran out of time.
#
#   bash benchmarks/gpu/lease.sh build tests sanitize      # first call
#   bash benchmarks/gpu/lease.sh use-so bench              # a later, fresh machine
#
# Steps:
#   build     build in place with CUDA (sm_90, MAX_JOBS=16), then save the built
#             extension, stripped and gzipped in 15 MB parts, as $OUT/so.gz.*
#   use-so    reinstall the extension from so.gz.* parts carried in .gpu_so/
#             (put them there and name .gpu_so in the call's carry)
#   tests     tests/test_cuda.py and tests/test_autocast.py
#   accuracy  benchmarks/gpu/accuracy.py: both sides' distance from exact, in bounds
#   sanitize  compute-sanitizer memcheck and racecheck over sanitizer_cases.py
#   bench     python -m convext.bench on cuda, float32 (TF32 as torch's default),
#             bfloat16 and float16 (or BENCH_DTYPES), NCHW and channels_last (BENCH_ARGS adds)
#   bench-no-tf32   the float32 run again with --no-tf32
# Env: DEADLINE (s, default 560), TAG (default: the steps joined by '-').
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-16} FORCE_CUDA=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # scripts under benchmarks/ import convext from here
OUT=${OUT:-/tmp/lease-out}
DEADLINE=${DEADLINE:-560}
TAG=${TAG:-$(IFS=-; echo "$*")}
LOG=/tmp/lease/$TAG
rm -rf "$LOG"; mkdir -p "$LOG" "$OUT"
start=$(date +%s)
left() { echo $(( DEADLINE - ($(date +%s) - start) )); }
note() { echo "[lease $(( $(date +%s) - start ))s] $*" | tee -a "$LOG/steps.log"; }

# run NAME LIMIT CMD...: CMD under min(LIMIT, time left - 25 s), output in $LOG/NAME.log.
run() {
  local name=$1 limit=$2 budget
  shift 2
  budget=$(( $(left) - 25 ))
  [ "$budget" -lt "$limit" ] && limit=$budget
  if [ "$limit" -lt 10 ]; then note "$name SKIPPED: no time left"; return 1; fi
  note "$name (limit ${limit}s): $*"
  timeout "$limit" "$@" >"$LOG/$name.log" 2>&1
  local rc=$?
  tail -4 "$LOG/$name.log" | sed 's/^/    /' | tee -a "$LOG/steps.log"
  note "$name exit $rc$([ "$rc" -eq 124 ] && echo ' (TIMED OUT)')"
  return "$rc"
}

nvidia-smi >"$LOG/nvidia-smi.txt" 2>&1
python -c "import sys, torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name(), 'python', sys.version.split()[0])" 2>&1 | tee "$LOG/env.txt"
git log -1 --format='commit %H %s' 2>/dev/null | tee -a "$LOG/env.txt"
nproc | sed 's/^/cores /' | tee -a "$LOG/env.txt"

SO_NAME=$(python -c "import sysconfig; print('_C' + sysconfig.get_config_var('EXT_SUFFIX'))")
for step in "$@"; do
  case "$step" in
    build)
      run build 420 python setup.py build_ext --inplace &&
        run with-cuda 60 python -c "import convext, sys; sys.exit(0 if convext.with_cuda() else 'built without CUDA')" &&
        { cp "convext/$SO_NAME" /tmp/c.so && strip --strip-debug /tmp/c.so &&
          gzip -1 -c /tmp/c.so | split -b 15M - "$OUT/so.gz." &&
          note "saved $(ls "$OUT"/so.gz.* | wc -l) part(s) of $SO_NAME ($(du -h /tmp/c.so | cut -f1) stripped)"; } ;;
    use-so)
      cat .gpu_so/so.gz.* | gunzip >"convext/$SO_NAME" &&
        run with-cuda 60 python -c "import convext, sys; sys.exit(0 if convext.with_cuda() else 'built without CUDA')" ;;
    tests)
      run tests 240 python -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py \
        tests/test_autocast.py --junitxml="$LOG/tests.xml" ;;
    accuracy)
      run accuracy 120 python benchmarks/gpu/accuracy.py ;;
    sanitize)
      for tool in memcheck racecheck; do
        PYTORCH_NO_CUDA_MEMORY_CACHING=1 run "sanitizer_$tool" 200 \
          compute-sanitizer --tool "$tool" python benchmarks/gpu/sanitizer_cases.py
      done ;;
    bench)
      run bench 480 python -m convext.bench --device cuda --dtypes "${BENCH_DTYPES:-float32,bfloat16,float16}" \
        --layouts nchw,channels_last --out "$LOG/results" --no-progress ${BENCH_ARGS:-} ;;
    bench-no-tf32)
      run bench-no-tf32 300 python -m convext.bench --device cuda --dtypes float32 --no-tf32 \
        --layouts nchw,channels_last --out "$LOG/results" --no-progress ${BENCH_ARGS:-} ;;
    *) note "unknown step '$step'" ;;
  esac
done
tar czf "$OUT/$TAG.tgz" -C /tmp/lease "$TAG"
note "packed $OUT/$TAG.tgz"
