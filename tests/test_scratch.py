"""CPU scratch memory: every workspace of the CPU kernels is counted
(convext._C.scratch_stats, the benchmark's scratch/out column), and over the
benchmark suite's shapes, at a small batch, neither a forward nor a backward
keeps more scratch alive at once than the bytes of the conv's output."""
import pytest
import torch

import convext
from convext import _C
from convext.bench import cases, suites

THREADS = 2  # per-thread buffers count once per thread: fixed, so runs compare


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


def test_counter_sees_a_call_and_resets():
    x, w = torch.randn(2, 16, 20, 20), torch.randn(32, 16, 3, 3)
    _C.scratch_stats(reset=True)
    assert _C.scratch_stats() == 0
    convext.conv2d(x, w, padding=1)
    peak = _C.scratch_stats(reset=True)
    # at least the packed weights (float32) were scratch
    assert peak >= w.numel() * 4
    assert _C.scratch_stats(reset=True) == 0  # nothing stays alive after a call


def test_counter_sees_depthwise_and_grad_weight_buffers():
    for args in [(torch.randn(1, 8, 30, 30), torch.randn(8, 1, 3, 3), dict(groups=8)),
                 (torch.randn(1, 8, 30, 30), torch.randn(8, 8, 3, 3), {})]:
        x, w, kw = args
        x.requires_grad_()
        w.requires_grad_()
        y = convext.conv2d(x, w, **kw)
        _C.scratch_stats(reset=True)
        torch.autograd.grad(y, (w,), torch.ones_like(y))
        assert _C.scratch_stats(reset=True) > 0


def _shapes():
    # 2D and 1D shapes of the benchmark, each once; transposed convs run the
    # same kernels with the roles of forward and grad_input swapped.
    return suites.select("all")


def _measure(shape, dtype, layout):
    x, w, b, go = cases.make_inputs(shape, 1, dtype, "cpu", layout)
    return cases.scratch(cases.conv_fn("convext", shape), x, w, b, go)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_scratch_stays_within_the_output(dtype, layout, threads):
    over = []
    for shape in _shapes():
        if layout == "channels_last" and shape.dims == 1:
            continue
        sc = _measure(shape, dtype, layout)
        for d in ("fwd", "bwd"):
            if sc[d] > sc["out"]:
                over.append(f"{shape.name} {d}: {sc[d]} > {sc['out']} bytes "
                            f"({sc[d] / sc['out']:.2f}x)")
    assert not over, "\n".join(over)
