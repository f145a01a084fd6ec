"""convext.bench.depthwise_model: the modelled bytes of the CUDA depthwise
kernels (benchmarks/gpu/model_depthwise.py writes the table from it)."""
from dataclasses import replace

import pytest
import torch

from convext.bench.depthwise_model import (H100_HBM_BYTES_PER_S, depthwise_bytes,
                                           depthwise_cases)
from convext.bench.suites import ALL, Shape


def test_cases_are_the_suites_depthwise_shapes():
    names = {c.name for c in depthwise_cases()}
    assert "mamba.dwconv.k4" in names and "convnext.dw7x7.96@56" in names
    assert names == {s.name for s in ALL if s.groups == s.cin > 1 and not s.transposed}


@pytest.mark.parametrize("direction", ["forward", "grad_input", "grad_weight"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_bytes(dtype, layout, direction):
    for case in depthwise_cases():
        r = depthwise_bytes(case, dtype, layout, direction)
        N, elem = case.batch_for("cuda"), dtype.itemsize
        x = N * case.cin * (case.size[0] * (case.size[1] if case.dims == 2 else 1)) * elem
        assert r["min_bytes"] >= x  # the input (or grad_input) once at least
        assert r["kernel_bytes"] > 0
        assert r["hbm_s"] == pytest.approx(r["min_bytes"] / H100_HBM_BYTES_PER_S)
        # every suite shape, strided grad_input included, takes a tiled kernel
        assert r["path"].startswith("tile"), (case.name, r["path"])
        if direction == "grad_input" and any(s > 1 for s in case.stride):
            assert "x 4 phases" in r["path"], (case.name, r["path"])


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_strided_grad_input_and_multiplier_read_each_operand_about_once(layout):
    """The tiled strided grad_input stages grad_out once (its halo aside),
    where the per-element kernel re-read it per tap; with a multiplier the
    forward stages the input once for its m outputs, grad_weight once per
    output."""
    s2 = Shape("dw3.s2", 144, 144, (56, 56), (3, 3), (2, 2), (1, 1), (1, 1), 144,
               batch={"cpu": 8})
    r = depthwise_bytes(s2, torch.bfloat16, layout, "grad_input")
    assert r["path"].startswith("tile") and "x 4 phases" in r["path"]
    assert r["kernel_bytes"] < 1.3 * r["min_bytes"], r
    m2 = replace(s2, name="dw3.m2", cout=288, stride=(1, 1))
    fwd, gi, gw = (depthwise_bytes(m2, torch.float32, layout, d)
                   for d in ("forward", "grad_input", "grad_weight"))
    assert all(r["path"].startswith("tile") for r in (fwd, gi, gw))
    x = 8 * 144 * 56 * 56 * 4
    y = 2 * x
    assert x <= fwd["kernel_bytes"] - y - 288 * 10 * 4 < 1.3 * x, fwd
    assert y <= gi["kernel_bytes"] - x - 288 * 9 * 4 < 1.3 * y, gi
    assert 2 * x <= gw["kernel_bytes"] - y < 2 * 1.3 * x + 1e6, gw


def test_bad_direction():
    with pytest.raises(ValueError, match="direction"):
        depthwise_bytes(depthwise_cases()[0], torch.float32, "nchw", "sideways")
