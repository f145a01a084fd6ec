"""Small runs of every convext CUDA kernel, for compute-sanitizer (memcheck,
racecheck): every op (forward, grad_input, grad_weight, grad_bias) on the
dense implicit-GEMM path (both tile sizes, split and unsplit reductions,
stride phases without taps), the depthwise path, 1D, channels_last and
strided inputs, in every dtype. Each result is also checked against float64
torch, so a run that is clean for the sanitizer but wrong still fails.

    compute-sanitizer --tool memcheck python benchmarks/gpu/sanitizer_cases.py
"""
import sys

import torch
import torch.nn.functional as F

import convext

# (dims, N, C, OC, size, kernel, stride, padding, dilation, groups, layout)
CASES = [
    (2, 2, 8, 16, (9, 10), (3, 3), (1, 1), (1, 1), (1, 1), 1, "contiguous"),
    (2, 1, 6, 10, (11, 13), (3, 2), (2, 3), (1, 0), (2, 1), 2, "channels_last"),
    (2, 2, 3, 8, (16, 16), (2, 2), (4, 4), (0, 0), (1, 1), 1, "strided"),  # tapless phases
    (2, 1, 256, 8, (3, 3), (3, 3), (1, 1), (1, 1), (1, 1), 1, "contiguous"),  # split-K forward
    (2, 2, 8, 8, (12, 12), (3, 3), (2, 2), (1, 1), (1, 1), 8, "channels_last"),  # depthwise
    (2, 2, 4, 12, (9, 9), (5, 3), (1, 2), (2, 1), (1, 2), 4, "contiguous"),   # multiplier 3
    (1, 3, 6, 9, (40,), (5,), (2,), (3,), (2,), 1, "contiguous"),
    (1, 2, 6, 6, (33,), (7,), (1,), (3,), (1,), 6, "strided"),
]
# 128x128 tiles need more tiles than SMs (132 on an H100), so these are
# larger and run in float32 only: forward and grad_weight, then grad_input.
BIG_CASES = [
    (2, 1, 8, 136, (92, 92), (3, 3), (1, 1), (1, 1), (1, 1), 1, "contiguous"),
    (2, 1, 72, 8, (130, 130), (3, 3), (1, 1), (1, 1), (1, 1), 1, "contiguous"),
]
DTYPES = [(torch.float32, True), (torch.float32, False), (torch.float64, False),
          (torch.float16, False), (torch.bfloat16, False)]  # (dtype, TF32 allowed)


def layout(t, kind):
    if kind == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if kind == "strided":
        big = torch.zeros((*t.shape[:-1], 2 * t.shape[-1]), device=t.device, dtype=t.dtype)
        big[..., ::2] = t
        return big[..., ::2]
    return t


def run(case, dtype, tf32):
    torch.backends.cudnn.allow_tf32 = tf32  # convext follows it: TF32 MMA or full float32
    dims, n, c, oc, size, k, s, p, d, g, kind = case
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    x = layout(torch.randn((n, c, *size), device="cuda").to(dtype), kind).requires_grad_()
    w = torch.randn((oc, c // g, *k), device="cuda").to(dtype).requires_grad_()
    b = torch.randn((oc,), device="cuda").to(dtype).requires_grad_()
    out = getattr(convext, f"conv{dims}d")(x, w, b, **kw)
    go = layout(torch.randn_like(out), kind)
    grads = torch.autograd.grad(out, (x, w, b), go)
    ref = getattr(F, f"conv{dims}d")
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    ref_out = ref(x64, w64, b64, **kw)
    ref_grads = torch.autograd.grad(ref_out, (x64, w64, b64), go.double())
    rtol = {torch.float64: 1e-9, torch.float32: 1e-2 if tf32 else 1e-4}.get(dtype, 3e-2)
    bad = []
    for name, got, want in zip(("forward", "grad_input", "grad_weight", "grad_bias"),
                               (out,) + grads, (ref_out,) + ref_grads):
        scale = want.abs().max().item() + 1e-6
        if (got.double() - want).abs().max().item() > rtol * scale:
            bad.append(name)
    return bad


def main():
    # float32 twice: TF32 on (torch's default for convs: the MMA kernels where the
    # channels allow) and off (full float32 on the SIMT kernels).
    runs = [(c, d, tf32) for c in CASES for d, tf32 in DTYPES] + \
        [(c, torch.float32, tf32) for c in BIG_CASES for tf32 in (True, False)]
    failures = 0
    for case, dtype, tf32 in runs:
        bad = run(case, dtype, tf32)
        torch.cuda.synchronize()
        if bad:
            failures += 1
            print(f"WRONG {bad} for {case} {dtype}{' tf32' if tf32 else ''}")
    print(f"sanitizer_cases: {len(runs)} runs, {failures} with wrong results")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
