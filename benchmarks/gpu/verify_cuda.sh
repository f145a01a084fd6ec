#!/usr/bin/env bash
# One command to verify the CUDA backend on a GPU machine (sized for one H100
# and 16 cores, under ~9 minutes):
#   1. build convext in place with the CUDA kernels (sm_90 by default),
#   2. run the CUDA and autocast tests, then the rest of the suite, on the GPU,
#   3. run compute-sanitizer memcheck and racecheck over sanitizer_cases.py,
#   4. write summary.json / summary.txt and the logs to benchmarks/results/gpu_verify/
#      and, when $OUT is set, to $OUT/ as well.
# Needs a CUDA build of torch already installed (no network is used).
# Exits non-zero when any step fails.
#
#   bash benchmarks/gpu/verify_cuda.sh
set -uo pipefail
cd "$(dirname "$0")/../.."

RES=benchmarks/results/gpu_verify
rm -rf "$RES"
mkdir -p "$RES"
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
note() { echo "[verify_cuda $(elapsed)s] $*" | tee -a "$RES/steps.log"; }

export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-16}
export FORCE_CUDA=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # sanitizer_cases.py imports convext from here

nvidia-smi >"$RES/nvidia-smi.txt" 2>&1
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)" \
  >"$RES/env.txt" 2>&1
note "$(cat "$RES/env.txt")"

# 1. Build.
note "build (TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST MAX_JOBS=$MAX_JOBS)"
build_ok=0
if python setup.py build_ext --inplace >"$RES/build.log" 2>&1 &&
   python -c "import convext, sys; sys.exit(0 if convext.with_cuda() else 1)" \
     >>"$RES/build.log" 2>&1; then
  build_ok=1
else
  note "build FAILED or convext.with_cuda() is False: see $RES/build.log"
  tail -30 "$RES/build.log"
fi

# 2. Tests: the CUDA-specific files first, then the rest of the suite.
run_pytest() {  # $1 name, $2 timeout (s), rest: pytest args
  local name=$1 limit=$2
  shift 2
  note "pytest $name (limit ${limit}s)"
  timeout "$limit" python -m pytest -q -rs -p no:cacheprovider \
    --junitxml="$RES/pytest_$name.xml" "$@" >"$RES/pytest_$name.log" 2>&1
  local rc=$?
  tail -3 "$RES/pytest_$name.log" | tee -a "$RES/steps.log"
  [ "$rc" -eq 124 ] && note "pytest $name TIMED OUT"
  return 0
}
if [ "$build_ok" -eq 1 ]; then
  run_pytest cuda 180 tests/test_cuda.py tests/test_autocast.py
  run_pytest rest 100 tests --ignore=tests/test_cuda.py --ignore=tests/test_autocast.py
fi

# 3. Sanitizers over small cases of every kernel.
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
run_sanitizer() {  # $1 tool
  local tool=$1
  note "compute-sanitizer --tool $tool"
  # Without the caching allocator every tensor is its own allocation, so an
  # out-of-bounds access cannot land unseen in a neighbouring cached block.
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 75 "$SAN" --tool "$tool" \
    python benchmarks/gpu/sanitizer_cases.py \
    >"$RES/sanitizer_$tool.log" 2>&1
  echo "exit=$?" >>"$RES/sanitizer_$tool.log"
  tail -3 "$RES/sanitizer_$tool.log" | tee -a "$RES/steps.log"
}
if [ "$build_ok" -eq 1 ] && [ -n "$SAN" ]; then
  run_sanitizer memcheck
  run_sanitizer racecheck
elif [ -z "$SAN" ]; then
  note "compute-sanitizer not found: sanitizer steps skipped"
fi

# 4. Summary.
python - "$RES" "$build_ok" "$(elapsed)" <<'PY'
import json, os, re, sys
import xml.etree.ElementTree as ET

res, build_ok, secs = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
summary = {"build_ok": build_ok, "seconds": secs, "env": open(f"{res}/env.txt").read().strip()}
for name in ("cuda", "rest"):
    path = f"{res}/pytest_{name}.xml"
    if not os.path.exists(path):
        summary[f"pytest_{name}"] = None
        continue
    counts = dict(passed=0, failed=0, errors=0, skipped=0)
    for suite in ET.parse(path).getroot().iter("testsuite"):
        tests, fail, err, skip = (int(suite.get(k, 0)) for k in
                                  ("tests", "failures", "errors", "skipped"))
        counts["failed"] += fail
        counts["errors"] += err
        counts["skipped"] += skip
        counts["passed"] += tests - fail - err - skip
    summary[f"pytest_{name}"] = counts
for tool in ("memcheck", "racecheck"):
    path = f"{res}/sanitizer_{tool}.log"
    if not os.path.exists(path):
        summary[tool] = None
        continue
    text = open(path, errors="replace").read()
    found = re.findall(r"ERROR SUMMARY: (\d+) error", text)
    hazards = re.findall(r"RACECHECK SUMMARY: (\d+) hazard", text)
    wrong = re.findall(r"sanitizer_cases: \d+ runs, (\d+) with wrong results", text)
    exit_code = re.findall(r"exit=(\d+)", text)
    summary[tool] = {
        "errors": int(found[-1]) if found else None,
        "hazards": int(hazards[-1]) if hazards else 0,
        "wrong_results": int(wrong[-1]) if wrong else None,
        "exit": int(exit_code[-1]) if exit_code else None,
    }

def ok():
    if not build_ok:
        return False
    for name in ("cuda", "rest"):
        c = summary.get(f"pytest_{name}")
        if c is None or c["failed"] or c["errors"] or (name == "cuda" and not c["passed"]):
            return False
    for tool in ("memcheck", "racecheck"):
        t = summary.get(tool)
        if t is None or t["errors"] != 0 or t["hazards"] or t["wrong_results"] != 0 or t["exit"]:
            return False
    return True

summary["ok"] = ok()
json.dump(summary, open(f"{res}/summary.json", "w"), indent=2)
lines = [f"convext CUDA verification: {'OK' if summary['ok'] else 'FAILED'} in {secs}s",
         f"env: {summary['env']}", f"build: {'ok' if build_ok else 'FAILED'}"]
for name in ("cuda", "rest"):
    c = summary.get(f"pytest_{name}")
    lines.append(f"pytest {name}: " + ("not run" if c is None else
                 f"{c['passed']} passed, {c['failed']} failed, {c['errors']} errors, "
                 f"{c['skipped']} skipped"))
for tool in ("memcheck", "racecheck"):
    t = summary.get(tool)
    lines.append(f"{tool}: " + ("not run" if t is None else
                 f"{t['errors']} errors, {t['hazards']} hazards, "
                 f"{t['wrong_results']} wrong results, exit {t['exit']}"))
open(f"{res}/summary.txt", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if summary["ok"] else 1)
PY
rc=$?
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/gpu_verify"
  cp -r "$RES"/. "$OUT/gpu_verify/"
  cp "$RES/summary.txt" "$RES/summary.json" "$OUT/"
fi
exit $rc
