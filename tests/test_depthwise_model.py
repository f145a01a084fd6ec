"""convext.bench.depthwise_model: the modelled bytes of the CUDA depthwise
kernels (benchmarks/gpu/model_depthwise.py writes the table from it)."""
import pytest
import torch

from convext.bench.depthwise_model import (H100_HBM_BYTES_PER_S, depthwise_bytes,
                                           depthwise_cases)
from convext.bench.suites import ALL


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
        # every suite shape has multiplier 1 and a compile-time tap shape
        if direction != "grad_input" or all(s == 1 for s in case.stride):
            assert r["path"].startswith("tile"), (case.name, r["path"])


def test_bad_direction():
    with pytest.raises(ValueError, match="direction"):
        depthwise_bytes(depthwise_cases()[0], torch.float32, "nchw", "sideways")
