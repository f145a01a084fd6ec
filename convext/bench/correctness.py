"""The correctness gate run before timing: convext's outputs against native's
on the same inputs, as the max error normalized by the reference's max
magnitude, so the tolerance depends on the dtype and not on the tensor's scale
or its reduction length."""
import torch

# Normalized error allowed per dtype. Both sides round to the dtype, so bf16
# and fp16 differ by a few units in the last place of the largest value.
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.bfloat16: 4e-2,
             torch.float16: 1e-2}
TF32_TOLERANCE = 5e-3  # native fp32 on TF32 tensor cores has a 10-bit mantissa


def tolerance(dtype, tf32=False):
    if dtype == torch.float32 and tf32:
        return TF32_TOLERANCE
    return TOLERANCE[dtype]


def normalized_error(actual, expected):
    """max|a - e| / max|e|; inf for a shape difference or any non-finite value."""
    if actual is None or expected is None:
        return 0.0 if actual is expected else float("inf")
    if actual.shape != expected.shape:
        return float("inf")
    a, e = actual.detach().double(), expected.detach().double()
    if not (torch.isfinite(a).all() and torch.isfinite(e).all()):
        return float("inf")
    scale = e.abs().max().item() if e.numel() else 0.0
    diff = (a - e).abs().max().item() if e.numel() else 0.0
    return diff / scale if scale > 0 else diff


def compare(actual, expected, tol):
    """actual/expected: name -> tensor. Returns {"ok", "tol", "errors": name -> error}."""
    errors = {name: normalized_error(actual[name], expected[name]) for name in expected}
    return {"ok": all(err <= tol for err in errors.values()), "tol": tol, "errors": errors}
