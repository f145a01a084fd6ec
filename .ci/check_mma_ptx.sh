#!/usr/bin/env bash
# Compiles the tensor-core kernels (.ci/mma_probe.cu instantiates the conv
# kernels of csrc/ops/cuda/igemm_mma.cuh, igemm_mma_dgrad.cuh and igemm_mma_wgrad.cuh
# and the test kernels of tests/cuda_emulator/mma_kernels.cuh, all over
# csrc/ops/cuda/mma.cuh) to PTX for sm_90, assembles it with `ptxas -v`, and asserts:
#   - the PTX holds mma.sync m16n8k16 (f16 and bf16), m16n8k8 tf32, cvt.rna.tf32,
#     ldmatrix (x1/x2/x4, .trans) and cp.async with commit/wait_group: the
#     wrappers the emulator stands in for are the instructions on the device,
#     and each instantiation of the tensor-core conv kernels (forward,
#     grad_input, grad_weight) uses all three, the weight gradient ldmatrix .trans
#     (its float instantiations: m16n8k8 tf32 and cvt.rna; grouped grad_weight is
#     the same instantiations, the group a grid dimension);
#   - the weight gradient's main loop has no integer division;
#   - ptxas accepts it (the inline PTX is valid for sm_90) with no spills.
# Prints ptxas' registers / shared memory per kernel. No GPU needed.
# Env: NVCC (default nvcc), PTXAS (default ptxas next to nvcc).
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-nvcc}
PTXAS=${PTXAS:-$(dirname "$(command -v "$NVCC")")/ptxas}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/stub/c10/cuda/impl"
: >"$tmp/stub/c10/cuda/impl/cuda_cmake_macros.h"
mapfile -t INC < <(python -c "from torch.utils import cpp_extension as c; print('\n'.join('-I' + p for p in c.include_paths()))")
"$NVCC" -arch=sm_90 -std=c++20 -O3 --expt-relaxed-constexpr -I"$tmp/stub" -Icsrc -Itests \
  "${INC[@]}" -ptx .ci/mma_probe.cu -o "$tmp/probe.ptx"
fail=0
for want in "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" \
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" \
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" "cvt.rna.tf32.f32" \
            "ldmatrix.sync.aligned.m8n8.x1.shared.b16" "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16" \
            "ldmatrix.sync.aligned.m8n8.x4.shared.b16" "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" \
            "cp.async.cg.shared.global" "cp.async.commit_group" "cp.async.wait_group"; do
  if ! grep -qF "$want" "$tmp/probe.ptx"; then
    echo "check_mma_ptx: FAILED: no '$want' in the PTX"
    fail=1
  fi
done
# and per conv kernel: each instantiation of the tensor-core forward and
# grad_input (4 tile shapes x f16, bf16, float) and grad_weight (2 tile
# shapes x f16, bf16, float) has mma (m16n8k16, or m16n8k8 tf32 with cvt.rna
# for float), ldmatrix (half types; float fragments are 32-bit loads;
# grad_weight .trans) and cp.async; the forward and grad_input epilogues
# store 16-byte vectors (st.global.v4)
python - "$tmp/probe.ptx" <<'PY' || fail=1
import re, sys
ptx = open(sys.argv[1]).read()
entries = re.split(r"(?=\.visible \.entry )", ptx)[1:]
def wanted(e, extra, stores):
    if re.search(r"(Mma|KMajor)PolicyIfLi", e.split("(", 1)[0]):  # <float, ...> policies
        return ("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", "cvt.rna.tf32.f32",
                "cp.async.cg") + stores
    return ("mma.sync.aligned.m16n8k16", "ldmatrix.sync", "cp.async.cg") + extra + stores
failed = False
v4 = ("st.global.v4",)
for kernel, want, want_tf32, extra, stores in (
        ("igemm_mma_forward_kernel", 12, 4, (), v4),
        ("igemm_mma_grad_input_kernel", 12, 4, (), v4),
        ("igemm_mma_wgrad_kernel", 6, 2, ("ldmatrix.sync.aligned.m8n8.x4.trans",), ())):
    conv = [e for e in entries if kernel in e.split("(", 1)[0]]
    bad = [e.split("(", 1)[0] for e in conv if not all(i in e for i in wanted(e, extra, stores))]
    tf32 = sum(bool(re.search(r"(Mma|KMajor)PolicyIfLi", e.split("(", 1)[0])) for e in conv)
    if len(conv) != want or tf32 != want_tf32 or bad:
        print(f"check_mma_ptx: FAILED: {len(conv)} {kernel} entries ({tf32} float; want "
              f"{want}, {want_tf32} float), without mma/ldmatrix/cp.async{extra + stores}: {bad}")
        failed = True
# grad_weight's main loop steps position counters: no integer division or
# remainder from the first cp.async wait to the last mma (its decode is once
# a block, before the ring)
for e in entries:
    name = e.split("(", 1)[0]
    if "igemm_mma_wgrad_kernel" in name:
        loop = e[e.find("cp.async.wait_group"):e.rfind("mma.sync")]
        divs = re.findall(r"\b(?:div|rem)\.[su](?:32|64)\b", loop)
        if divs:
            print(f"check_mma_ptx: FAILED: {len(divs)} div/rem in the main loop of {name}")
            failed = True
sys.exit(failed)
PY
"$PTXAS" -arch=sm_90 -v "$tmp/probe.ptx" -o "$tmp/probe.cubin" >"$tmp/ptxas.log" 2>&1 || {
  cat "$tmp/ptxas.log"; echo "check_mma_ptx: FAILED: ptxas rejected the PTX"; exit 1; }
python - "$tmp/ptxas.log" <<'PY' || fail=1
import re, subprocess, sys
log = open(sys.argv[1]).read()
bad = 0
for name, body in re.findall(r"Compiling entry function '(\w+)' for 'sm_90'\n(.*?)(?=\n[^\n]*Compiling|\Z)", log, re.S):
    try:
        name = subprocess.run(["c++filt", name], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    regs = re.search(r"Used (\d+) registers", body)
    smem = re.search(r"(\d+) bytes smem", body)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", body)
    spilled = spill and (int(spill[1]) or int(spill[2]))
    bad += bool(spilled)
    print(f"  {regs[1] if regs else '?':>4} regs {smem[1] if smem else 0:>6} B smem  "
          f"{'SPILLS ' if spilled else ''}{name}")
if bad:
    print(f"check_mma_ptx: FAILED: {bad} kernel(s) spill")
    sys.exit(1)
PY
[ "$fail" -eq 0 ] || exit 1
echo "check_mma_ptx: OK (mma.sync, ldmatrix, cp.async in the PTX; ptxas sm_90, no spills)"
