"""CPU scratch memory: every workspace of the CPU kernels is counted
(convext._C.scratch_stats, the benchmark's scratch/out column), and over the
benchmark suite's shapes, at the benchmark's CPU batch, neither a forward nor
a backward keeps more scratch alive at once than the bytes of the conv's
output, except on the shapes listed in KNOWN_OVER with their cause."""
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


# Shapes whose peak scratch exceeds the output's bytes (or comes within 25% of
# it) in some dtype/layout at the benchmark's CPU batch and 2 threads, on
# avx512+bf16 (measured; see the README's "Scratch memory"). Causes:
#   weights: the whole weight is packed once per call (G*Mp*Kp in the compute
#     type); at a small batch a late layer's weight dwarfs its output.
#   staged: stride-1 convs stage zero-padded, converted planes of the input
#     (forward) or of grad_output (grad_input), about their size: more than
#     the output when C_in > C_out, and for a channels-last 1x1 (a float
#     copy of the NHWC input). grad_input stages grad_output even for 1x1.
#   threads: per-thread panel and tile buffers, 2 threads.
#   transposed: on AMX, a bfloat16 channels-last grad_weight multiplies on
#     tiles from a transposed copy of grad_output (its size) plus partial sums
#     (up to half of it): 1.52x for l2.down.s2, the rest stay within.
#   nhwc_staged: NCHW forward/grad_input stage a few images channels
#     innermost (up to half the result); NCHW grad_weight on small images
#     (bfloat16 on AMX, float32 3x3 late layers) stages grad_output and the
#     input whole, plus a channels-last weight: 4.5-7.5x for bfloat16 NCHW
#     l2.down.s2, l2.3x3.s2, l3.3x3 and l3.1x1 bwd, for 2-2.4x speed.
# Fixing them needs per-image staging and per-task weight packing: not done.
KNOWN_OVER = {
    "resnet50.l1.1x1.64-64": "staged (bwd; channels_last fwd)",
    "resnet50.l1.3x3": "staged",
    "resnet50.l1.1x1.64-256": "staged (bwd)",
    "resnet50.l1.1x1.256-64": "staged (C_in = 4 C_out)",
    "resnet50.l2.3x3.s2": "weights, nhwc_staged (bf16 bwd)",
    "resnet50.l2.down.s2": "transposed (bf16 channels_last bwd on AMX), nhwc_staged (bf16 bwd)",
    "resnet50.l2.3x3": "staged, weights",
    "resnet50.l2.1x1.512-128": "staged (C_in = 4 C_out)",
    "resnet50.l3.3x3.s2": "weights",
    "resnet50.l3.3x3": "weights, nhwc_staged (bwd)",
    "resnet50.l3.1x1.256-1024": "weights, staged (bwd)",
    "resnet50.l3.1x1.1024-256": "weights, staged, nhwc_staged (bf16 bwd)",
    "resnet50.l4.3x3.s2": "weights (25x)",
    "resnet50.l4.3x3": "weights (25x)",
    "resnet50.l4.1x1.512-2048": "weights, nhwc_staged (bf16 bwd)",
    "resnext50.l1.3x3.g32": "staged",
    "resnext50.l3.3x3.g32": "weights, threads (0.88)",
    "effnetb0.dw5x5.672@14.s2": "threads (bfloat16 channels_last fwd 1.06)",
    "deeplab.l3.3x3.d2": "staged (dilated padding), weights",
    "deeplab.l4.3x3.d4": "staged (dilated padding), weights",
    "wavenet.k2.d1": "staged (bwd)",
    "wavenet.k2.d32": "staged (bwd)",
    "wavenet.k2.d512": "staged (bwd)",
    "wavenet.k3.d1": "staged (bwd)",
    "wavenet.k3.d64": "staged (bwd)",
    "wav2vec2.conv1": "weights",
    "conv1d.256-256.k3": "staged, weights",
    "unet.up2x2.512-256@28": "weights (transposed)",
    "dcgan.up4x4.256-128@16": "weights (transposed)",
    "hifigan.up1.k16s8": "weights (transposed, 25x)",
    "hifigan.up2.k16s8": "weights (transposed)",
}


def _shapes():
    """The benchmark's shapes (2D, 1D and transposed) that keep the rule."""
    shapes = suites.select("all")
    assert set(KNOWN_OVER) <= {s.name for s in shapes}, "a listed shape left the suite"
    return [s for s in shapes if s.name not in KNOWN_OVER]


def _measure(shape, dtype, layout):
    x, w, b, go = cases.make_inputs(shape, shape.batch_for("cpu"), dtype, "cpu", layout)
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


def test_the_check_trips_on_a_shape_over_the_rule(threads):
    """The largest known case, measured the same way, is over: the
    measurement can see a plan that breaks the rule."""
    (shape,) = suites.select("all", "resnet50.l4.3x3")
    sc = _measure(shape, torch.float32, "nchw")
    assert sc["fwd"] > sc["out"] and sc["bwd"] > sc["out"]
