"""Regression tests for the edge inputs of issue 12 that are not a single
bad call (those are in test_bad_inputs.py): gradients with huge strides,
paddings and dilations (work and scratch once grew with the stride's value),
zero input channels through autograd, grad_weight independent of the thread
count, and a call where torch itself crashes."""
import subprocess
import sys

import pytest
import torch

import convext
from conftest import ConvCase, assert_close_to_torch, case_id, conv_and_grads

BIG = 2 ** 62


@pytest.mark.parametrize("case", [
    # one output position: the stride cannot matter
    ConvCase(2, 2, 3, 4, (5, 5), (3, 3), stride=10 ** 12),
    ConvCase(2, 2, 3, 4, (5, 5), (3, 3), stride=(2 ** 63 - 1, 1), padding=1),
    ConvCase(2, 2, 3, 3, (5, 5), (3, 3), stride=2 ** 62, groups=3),          # depthwise
    ConvCase(1, 2, 3, 4, (5,), (3,), stride=10 ** 12),
    ConvCase(1, 2, 2, 2, (5,), (3,), stride=10 ** 12, groups=2),
    # several output positions: a huge padding with a stride close to it
    ConvCase(2, 2, 3, 4, (5, 5), (3, 3), stride=10 ** 12 + 1, padding=10 ** 12),
    ConvCase(2, 2, 3, 3, (5, 5), (3, 3), stride=10 ** 12 + 1, padding=10 ** 12, groups=3),
    ConvCase(2, 1, 2, 3, (5, 4), (3, 2), stride=(3, 10 ** 9), padding=(1, 10 ** 9)),
    # a huge dilation with the padding to fit it
    ConvCase(2, 2, 3, 4, (5, 5), (3, 3), dilation=BIG // 2, padding=BIG // 2),
    ConvCase(2, 2, 3, 3, (5, 5), (3, 3), dilation=BIG // 2, padding=BIG // 2, groups=3),
    ConvCase(1, 2, 3, 4, (5,), (3,), dilation=10 ** 9, padding=10 ** 9, stride=10 ** 9),
], ids=case_id)
def test_huge_parameters_gradients_match_torch(case):
    """Every gradient with torch's. These once allocated a vector per stride
    step (std::bad_alloc from about 1e9), or sized scratch planes by the
    padded extent, or overflowed int64."""
    assert_close_to_torch(case.dims, *case.make(torch.float32), **case.conv_kwargs)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_huge_stride_grads_in_every_layout(layout):
    case = ConvCase(2, 2, 4, 4, (6, 5), (3, 3), stride=(10 ** 10, 2), padding=1, groups=4)
    x, w, b = case.make(torch.float64)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    assert_close_to_torch(2, x, w, b, **case.conv_kwargs)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("case", [
    ConvCase(2, 2, 3, 16, (64, 64), (3, 3)),                   # one tile: split reduction
    ConvCase(2, 2, 8, 8, (40, 36), (3, 3), padding=1, groups=2),
    ConvCase(1, 4, 6, 5, (900,), (5,), stride=2),
], ids=case_id)
def test_grad_weight_does_not_depend_on_thread_count(case, threads):
    """The reduction split is planned for the problem, not for the thread
    count: bitwise the same with 1, 2 and 3 threads."""
    x, w, b = case.make(torch.float32)
    results = []
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        _, grads, _ = conv_and_grads(convext.conv2d if case.dims == 2 else convext.conv1d,
                                     x, w, b, torch.ones_like, **case.conv_kwargs)
        results.append(grads)
    for grads in results[1:]:
        for a, c in zip(grads, results[0]):
            assert torch.equal(a, c)


@pytest.mark.parametrize("dims", [1, 2])
def test_zero_channels_through_autograd(dims):
    """torch's (N, 0, ...) result; gradients: empty input and weight
    gradients, zeros for the bias."""
    groups = 2
    x = torch.randn(2, 0, *(6,) * dims, requires_grad=True)
    w = torch.randn(4, 0, *(3,) * dims, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    fn = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[dims]
    ours = getattr(convext, f"conv{dims}d")
    results = []
    for f in (fn, ours):
        out = f(x, w, b, stride=2, padding=1, groups=groups)
        grads = torch.autograd.grad(out.sum(), (x, w, b), allow_unused=True)
        results.append((out, grads))
    (ref, ref_grads), (out, grads) = results
    assert out.shape == ref.shape and out.stride() == ref.stride()
    for g, r in zip(grads, ref_grads):
        assert g.shape == r.shape
        torch.testing.assert_close(g, r)


def test_zero_channels_fake_kernel_agrees():
    x = torch.empty(2, 0, 5, 5, device="meta")
    w = torch.empty(3, 0, 3, 3, device="meta")
    out = convext.conv2d(x, w, torch.empty(3, device="meta"))
    assert out.shape == (2, 0, 3, 3)
    compiled = torch.compile(convext.conv2d, fullgraph=True, backend="eager")
    assert compiled(torch.randn(2, 0, 5, 5), torch.randn(3, 0, 3, 3)).shape == (2, 0, 3, 3)


# torch's oneDNN path crashes on this call (channels_last, groups=2, stride
# (2, 4), padding (3, 2), dilation (2, 3)); convext keeps giving the right
# answer, checked against torch's float64 path, which does not crash.
ONEDNN_CRASH = ConvCase(2, 2, 4, 2, (12, 1), (1, 1), stride=(2, 4), padding=(3, 2),
                        dilation=(2, 3), groups=2)


def test_where_torch_crashes_convext_is_right():
    x, w, b = ONEDNN_CRASH.make(torch.float32)
    x = x.contiguous(memory_format=torch.channels_last)
    assert_close_to_torch(2, x, w, b, **ONEDNN_CRASH.conv_kwargs)
