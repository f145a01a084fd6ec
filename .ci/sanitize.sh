#!/usr/bin/env bash
# Builds convext with AddressSanitizer + UndefinedBehaviorSanitizer
# (-fsanitize=address,undefined -fno-wrapv: signed overflow is a report, not
# a wrap) into build-asan/ (kept between runs: ninja rebuilds what changed),
# proves the build reports a deliberate heap overrun and signed overflow
# (test-only ops compiled only here, csrc/ops/cpu/sanitize_selftest.cpp),
# then runs the bad-input table, the error tests, a fuzz batch, the
# microkernel tests and the AMX/staged CPU paths' tests on it.
# Fails on any sanitizer report. Usage: .ci/sanitize.sh [extra pytest args]
# Env: MAX_JOBS (default 2), FUZZ_COUNT (default 200).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/build-asan"
start=$(date +%s)
step() { echo; echo "=== sanitize: $* ($(( $(date +%s) - start ))s)"; }
fail() { echo "sanitize: FAILED: $*"; exit 1; }

flags="-fsanitize=address,undefined -fno-wrapv -fno-omit-frame-pointer -fno-sanitize-recover=all -DCONVEXT_SANITIZE_SELFTEST"
step "build (ASan + UBSan) into build-asan/"
mkdir -p "$out"
CFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" FORCE_CPU=1 MAX_JOBS="${MAX_JOBS:-2}" \
  python setup.py -q build_ext --build-temp "$out/temp" --build-lib "$out/lib" \
  >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; fail "build"; }
# the Python package (subpackages too) next to the sanitized extension
find "$out/lib/convext" -mindepth 1 ! -name '_C*.so' -delete
tar -C convext --exclude='*.so' --exclude=__pycache__ -cf - . | tar -C "$out/lib/convext" -xf -

# Python itself is not instrumented: the ASan runtime must load first, and
# libstdc++ with it (else ASan's __cxa_throw interceptor finds no real one).
export LD_PRELOAD
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export FUZZ_COUNT="${FUZZ_COUNT:-200}"
cd "$out/lib"  # so that `import convext` is the sanitized build
python -c "import convext, sys; sys.exit('build-asan' not in convext.__file__)" \
  || fail "import convext does not pick build-asan/lib"

step "self-test: the build must report a heap overrun and a signed overflow"
trips() {  # trips <pattern> <python statement>
  if python -c "import convext, torch; $2" >"$out/selftest.log" 2>&1; then
    fail "'$2' ran clean: the sanitizer build does not report"
  fi
  grep -q "$1" "$out/selftest.log" || { cat "$out/selftest.log"; fail "no '$1' report"; }
  echo "reported: $(grep -m1 "$1" "$out/selftest.log")"
}
trips "heap-buffer-overflow" "torch.ops.convext_selftest.heap_overrun(8)"
trips "runtime error: signed integer overflow" "torch.ops.convext_selftest.signed_overflow(2**62)"

step "bad-input table, errors, hardening regressions, fuzz batch ($FUZZ_COUNT cases), microkernels, AMX/staged paths"
status=0
# (the last four: every ISA's kernels and data movers, the AMX tile paths
# and the staged/indirect ones, whose row pointers mix buffers; 15 s)
python -m pytest -q -p no:cacheprovider "$root/tests/test_bad_inputs.py" \
  "$root/tests/test_errors.py" "$root/tests/test_hardening.py" "$root/tests/test_fuzz.py" \
  "$root/tests/test_ukernels.py" "$root/tests/test_nhwc_gw_taps.py" \
  "$root/tests/test_small_c_cpu.py" "$root/tests/test_nhwc_staged.py" \
  "$@" 2>&1 | tee "$out/tests.log" || status=$?
if grep -qE "ERROR: AddressSanitizer|runtime error:" "$out/tests.log"; then
  fail "sanitizer report (see above)"
fi
[ "$status" -eq 0 ] || fail "tests (exit $status)"
step "done: no sanitizer report"
