#!/usr/bin/env bash
# Compile-checks every CUDA source (csrc/ops/cuda/**/*.cu) with `nvcc -c`, the
# way a FORCE_CUDA=1 build would compile it, on a machine without a GPU and
# with a CPU-only torch wheel. That wheel lacks c10/cuda/impl/cuda_cmake_macros.h,
# so an empty stub of it is put on a temporary include path. Objects go to a
# temporary dir and are thrown away. Exits non-zero on any compile error.
# ptxas reports every kernel instantiation's registers, shared memory, stack
# and spills (-Xptxas -v); .ci/ptxas_table.py writes them with the resulting
# occupancy at each kernel's block size (its .maxntid in the kept PTX) to
# benchmarks/results/ptxas-sm90.md (for sm_90) (when all sources are
# compiled) and fails on any spill or local-memory use.
#
# Usage: .ci/check_cuda.sh [file.cu ...]   (default: all of them)
# Env: NVCC (default nvcc), CUDA_CHECK_ARCH (default sm_90), CHECK_CUDA_JOBS
# (default: CPU count).
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC=${NVCC:-nvcc}
ARCH=${CUDA_CHECK_ARCH:-sm_90}
JOBS=${CHECK_CUDA_JOBS:-$(nproc)}
if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "check_cuda: FAILED: $NVCC not found on PATH"
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/stub/c10/cuda/impl" "$tmp/obj" "$tmp/log"
: >"$tmp/stub/c10/cuda/impl/cuda_cmake_macros.h"

# Flags as torch.utils.cpp_extension and setup.py pass them to nvcc.
python - >"$tmp/flags" <<'PY'
import torch
from torch.utils import cpp_extension as ce
flags = list(ce.COMMON_NVCC_FLAGS)
flags += ["-O3", "-std=c++20", "--expt-relaxed-constexpr", "-lineinfo",
          "--compiler-options", "-fPIC",
          "-DCONVEXT_WITH_CUDA", "-DTORCH_API_INCLUDE_EXTENSION_H",
          "-DTORCH_EXTENSION_NAME=_C",
          f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"]
flags += [f"-I{p}" for p in ce.include_paths()]
print("\n".join(dict.fromkeys(flags)))
PY
mapfile -t FLAGS <"$tmp/flags"
TABLE=benchmarks/results/ptxas-${ARCH/_/}.md
if [ "$#" -gt 0 ]; then
  SRCS=("$@")
  TABLE=$tmp/ptxas.md  # a partial run leaves the committed table alone
else
  mapfile -t SRCS < <(find csrc/ops/cuda -name '*.cu' | sort)
fi
if [ "${#SRCS[@]}" -eq 0 ]; then
  echo "check_cuda: FAILED: no .cu files under csrc/ops/cuda"
  exit 1
fi

compile() {  # $1: source; writes $tmp/log/<name>.log and .ok on success
  local src=$1 name
  name=$(echo "$src" | tr '/' '_')
  mkdir -p "$tmp/keep/$name"  # the PTX, for each kernel's .maxntid (block size)
  if "$NVCC" -c "$src" -o "$tmp/obj/$name.o" -arch="$ARCH" -I"$tmp/stub" -Icsrc "${FLAGS[@]}" -Xptxas -v \
      --keep --keep-dir "$tmp/keep/$name" \
      >"$tmp/log/$name.log" 2>&1; then
    touch "$tmp/log/$name.ok"
  fi
}
start=$(date +%s)
running=0
for src in "${SRCS[@]}"; do
  compile "$src" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
secs=$(( $(date +%s) - start ))

failed=()
for src in "${SRCS[@]}"; do
  name=$(echo "$src" | tr '/' '_')
  if [ ! -f "$tmp/log/$name.ok" ]; then
    failed+=("$src")
    echo "=== $src ==="
    cat "$tmp/log/$name.log"
  elif grep -qvE '^ptxas info|bytes stack frame' "$tmp/log/$name.log"; then
    echo "=== $src (warnings) ==="
    grep -vE '^ptxas info|bytes stack frame' "$tmp/log/$name.log"
  fi
done

version=$("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
if [ "${#failed[@]}" -gt 0 ]; then
  echo "check_cuda: FAILED ${#failed[@]}/${#SRCS[@]} CUDA sources (nvcc $version, $ARCH, ${secs}s): ${failed[*]}"
  exit 1
fi
python .ci/ptxas_table.py "$ARCH" "$TABLE" "$tmp"/log/*.log "$tmp"/keep/*/*.ptx || {
  echo "check_cuda: FAILED: register spills or local memory (see above)"
  exit 1
}
echo "check_cuda: OK ${#SRCS[@]}/${#SRCS[@]} CUDA sources compiled (nvcc $version, $ARCH, ${secs}s)"
