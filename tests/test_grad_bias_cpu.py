"""conv_grad_bias on CPU: the plane sum (NCHW) and the channel-run sum
(channels innermost), against a float64 sum, with the order of additions fixed
by the sizes alone (bitwise equal across thread counts)."""
import pytest
import torch

import convext  # noqa: F401  (registers the ops)
from conftest import assert_within, dtype_id

op = torch.ops.convext.conv_grad_bias


def _grad(shape, dtype, layout):
    g = torch.randn(shape, dtype=torch.float64)
    if layout == "channels_last":
        return g.to(dtype).contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # neither layout: every other column
        return torch.randn(*shape[:-1], 2 * shape[-1], dtype=torch.float64).to(dtype)[..., ::2]
    if layout == "nhwc_view":  # channels innermost but not a channels_last tensor
        return g.to(dtype).movedim(1, -1).contiguous().movedim(-1, 1)
    return g.to(dtype)


SHAPES = [(4, 64, 17, 13), (2, 3, 5, 7), (1, 1, 40, 40), (3, 300, 1, 1), (2, 48, 64, 64),
          (0, 8, 4, 4), (2, 8, 0, 5)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16],
                         ids=dtype_id)
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided", "nhwc_view"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_grad_bias_matches_sum(shape, layout, dtype):
    g = _grad(shape, dtype, layout)
    ref = g.double().sum((0, 2, 3))
    per_channel = shape[0] * shape[2] * shape[3]
    assert_within(op(g), ref, g.double().abs().sum((0, 2, 3)), per_channel, dtype, "grad_bias")


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_grad_bias_other_ranks(dims):
    g = torch.randn(3, 24, *([9] * dims))
    ref = g.double().sum([0] + list(range(2, g.dim())))
    torch.testing.assert_close(op(g).double(), ref, rtol=1e-5, atol=1e-4)
    nhwc = g.movedim(1, -1).contiguous().movedim(-1, 1)  # channels innermost
    torch.testing.assert_close(op(nhwc).double(), ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_grad_bias_independent_of_threads(layout):
    g = _grad((4, 96, 57, 31), torch.float32, layout)  # several pixel blocks
    before = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(op(g))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(r, results[0]) for r in results)
