"""How far convext and torch (cuDNN) are from the exact result, on a GPU, in
units of the single-rounding error bound that tests/test_cuda.py uses:
    |got - exact| <= gamma(K) * sum|a*b| + u_out * |exact|   (+ 2^-10 * sum|a*b| for TF32)
A value <= 1 means the result is within the bound of one float32 accumulation
rounded once; above 1 it is not. Printed per shape, dtype and pass (forward,
grad_input, grad_weight) as the worst element's ratio for each side.

    python benchmarks/gpu/accuracy.py      (from the checkout, convext built with CUDA)
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import test_cuda as T  # noqa: E402  (the shapes, float64 references and bounds)

import convext  # noqa: E402


def worst(got, exact, tol):
    return float(((got.double() - exact).abs() / tol).max())


def passes(lib, dims, x, w, b, kw, go):
    f = T.conv_fn(dims, lib)
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = f(x, w, b, **kw)
    gx, gw = torch.autograd.grad(out, (x, w), go)
    return out, gx, gw


def main():
    rows = []
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        dtypes = [torch.float32] if tf32 else [torch.float32, torch.float16, torch.bfloat16]
        for dtype in dtypes:
            extra = 2 * T.TF32_UNIT if tf32 else 0.0
            for name in T.SHAPES:
                dims, x, w, b, kw = T.make(name, dtype)
                ref, mag = T.reference(dims, x, w, b, kw)
                go = torch.randn_like(ref).to(dtype)
                (ex, ew), (mx, mw) = T.grads_reference(dims, x, w, None, kw, go)
                positions = ref[0, 0].numel() * ref.shape[0]
                k_in = w.shape[0] // kw["groups"] * w[0, 0].numel()
                tols = (T.bound(ref, mag, T.reduction_len(w), dtype, extra),
                        T.bound(ex, mx, k_in, dtype, extra),
                        T.bound(ew, mw, positions, dtype, extra))
                ours = passes(convext, dims, x, w, b, kw, go)
                theirs = passes(torch.nn.functional, dims, x, w, b, kw, go)
                label = str(dtype).replace("torch.", "") + (" tf32" if tf32 else "")
                for what, e, tol, o, t in zip(("fwd", "grad_input", "grad_weight"),
                                              (ref, ex, ew), tols, ours, theirs):
                    rows.append((label, name, what, worst(o, e, tol), worst(t, e, tol)))
    print(f"{'dtype':<14}{'shape':<18}{'pass':<12}{'convext':>9}{'torch':>9}")
    for label, name, what, o, t in rows:
        flag = "  <- convext over" if o > 1 else ("  <- torch over" if t > 1 else "")
        print(f"{label:<14}{name:<18}{what:<12}{o:9.3f}{t:9.3f}{flag}")
    over = [r for r in rows if r[3] > 1]
    print(f"accuracy: {len(rows)} results, convext over its bound in {len(over)}, "
          f"torch over it in {sum(r[4] > 1 for r in rows)}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
