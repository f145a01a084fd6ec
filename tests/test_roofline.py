"""The roofline model (convext/bench/roofline.py): FLOPs and bytes of a few
shapes worked out by hand, the bound switching where it should, the convext
path per shape, and the committed table being the model's current output.
It checks arithmetic only: nothing here is a measured speed."""
from pathlib import Path

import pytest

from convext.bench import roofline, suites

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "results" / "roofline-h100.md"
SHAPE = {s.name: s for s in suites.ALL}


def test_resnet_3x3_by_hand():
    """resnet50.l1.3x3: 64->64, 3x3, 56x56, GPU batch 32."""
    row = roofline.model_row(SHAPE["resnet50.l1.3x3"], "bf16/fp16", "fwd")
    assert row["batch"] == 32
    flops = 2 * 32 * 64 * 56 * 56 * 64 * 9  # 2 * N * OC * OH * OW * C * KH * KW
    assert row["flops"] == flops == 7_398_752_256
    # x and y: 32*64*56*56 elements each, w: 64*64*3*3, two bytes each.
    assert row["bytes"] == (2 * 32 * 64 * 56 * 56 + 64 * 64 * 9) * 2 == 25_763_840
    assert row["compute_s"] == pytest.approx(flops / 989e12)
    assert row["memory_s"] == pytest.approx(25_763_840 / 3.35e12)
    # 7.48 us of tensor-core math against 7.69 us of HBM traffic: memory, just.
    assert row["bound"] == "memory" and row["ideal_s"] == pytest.approx(7.691e-6, rel=1e-3)
    assert row["path"] == "tensor-core"
    # float32: twice the bytes; on CUDA cores (no TF32) the math takes 110 us.
    ieee = roofline.model_row(SHAPE["resnet50.l1.3x3"], "fp32 (no TF32)", "fwd")
    assert ieee["bytes"] == 2 * row["bytes"] and ieee["bound"] == "compute"
    assert ieee["ideal_s"] == pytest.approx(flops / 67e12) and ieee["path"] == "SIMT"
    tf32 = roofline.model_row(SHAPE["resnet50.l1.3x3"], "fp32 (TF32)", "fwd")
    assert tf32["compute_s"] == pytest.approx(flops / 494e12) and tf32["path"] == "tensor-core"


def test_bound_switches_with_channels():
    """Same FLOPs as l1.3x3, but 512 channels at 7x7: a third of the bytes,
    so the tensor cores, not HBM, set the time."""
    row = roofline.model_row(SHAPE["resnet50.l4.3x3"], "bf16/fp16", "fwd")
    assert row["flops"] == 2 * 32 * 512 * 7 * 7 * 512 * 9 == 7_398_752_256
    assert row["bytes"] == (2 * 32 * 512 * 49 + 512 * 512 * 9) * 2 == 7_929_856
    assert row["bound"] == "compute" and row["ideal_s"] == pytest.approx(row["flops"] / 989e12)


def test_depthwise_is_bandwidth_bound():
    row = roofline.model_row(SHAPE["mbv2.dw3x3.144@56"], "bf16/fp16", "fwd")
    assert row["batch"] == 64 and row["path"] == "depthwise"
    assert row["flops"] == 2 * 64 * 144 * 56 * 56 * 9 == 520_224_768
    assert row["bytes"] == (2 * 64 * 144 * 56 * 56 + 144 * 9) * 2 == 115_608_096
    assert row["bound"] == "memory" and row["ideal_s"] == pytest.approx(115_608_096 / 3.35e12)
    # Depthwise math runs on CUDA cores, the same in every mode: the modelled time
    # is bytes / (bandwidth x efficiency), twice as long in float32.
    assert row["convext_s"] == pytest.approx(row["bytes"] / (3.35e12 * roofline.CONVEXT_MEMORY))
    fp32 = roofline.model_row(SHAPE["mbv2.dw3x3.144@56"], "fp32 (TF32)", "fwd")
    assert fp32["convext_s"] == pytest.approx(2 * row["convext_s"], rel=1e-4)
    for name in ("mamba.dwconv.k4", "convnext.dw7x7.96@56", "effnetb0.dw5x5.144@56.s2"):
        for dtype in roofline.DTYPES:
            r = roofline.model_row(SHAPE[name], dtype, "fwd+bwd")
            assert r["bound"] == "memory" and r["path"] == "depthwise", (name, dtype)


def test_directions_sum_their_kernels():
    shape = SHAPE["resnet50.l3.3x3"]
    fwd, bwd, both = (roofline.model_row(shape, "bf16/fp16", d) for d in ("fwd", "bwd", "fwd+bwd"))
    assert bwd["flops"] == 2 * fwd["flops"] and both["flops"] == 3 * fwd["flops"]
    assert bwd["bytes"] == 2 * fwd["bytes"] and both["bytes"] == 3 * fwd["bytes"]
    assert both["convext_s"] == pytest.approx(fwd["convext_s"] + bwd["convext_s"])


def test_gemm_dims_cover_the_flops():
    """forward and grad_weight GEMMs multiply out to the FLOP count for every
    shape (transposed ones through their inverse conv)."""
    for shape in suites.ALL:
        for kernel in ("forward", "grad_weight"):
            m, n, k = roofline.gemm_dims(shape, 3, kernel)
            assert 2 * m * n * k * shape.groups == shape.flops_fwd(3), (shape.name, kernel)


def test_paths_and_tile_fill():
    path = lambda name, mode="half": roofline.convext_path(SHAPE[name], mode)  # noqa: E731
    assert path("resnet50.stem") == "SIMT"          # C = 3
    assert path("wav2vec2.conv0") == "SIMT"         # C = 1
    assert path("resnext50.l1.3x3.g32") == "SIMT"   # 4 channels per group: half a vector
    assert path("resnext50.l1.3x3.g32", "tf32") == "tensor-core"  # 4 floats: one vector
    assert path("resnext50.l3.3x3.g32") == "tensor-core"  # 16 channels per group
    assert path("resnet50.l1.3x3", "ieee") == "SIMT"
    assert path("unet.up2x2.512-256@28") == "tensor-core"
    assert roofline.tile_fill(64, 64, 32) == 1.0
    assert roofline.tile_fill(100, 64, 32) == pytest.approx(100 / 128)
    assert roofline.tile_fill(64, 8, 40) == pytest.approx(8 / 64 * 40 / 64)
    # A GEMM with N = 8 fills an eighth of each 64-wide tile: 8x the compute time.
    small = roofline.model_kernel(suites.conv2d("n8", 64, 8, 56, 3), 32, "bf16/fp16", "forward")
    assert small["convext_s"] == pytest.approx(
        small["flops"] / (989e12 * roofline.CONVEXT_TENSOR / 8))


def test_depthwise_bytes_hook(monkeypatch):
    shape = SHAPE["mbv2.dw3x3.144@56"]
    base = roofline.model_row(shape, "bf16/fp16", "fwd")
    seen = []

    def halo_bytes(shape, batch, elem_bytes, kernel):
        seen.append(kernel)
        return 2 * roofline.min_bytes(shape, batch, elem_bytes)

    monkeypatch.setattr(roofline, "DEPTHWISE_BYTES", halo_bytes)
    row = roofline.model_row(shape, "bf16/fp16", "fwd")
    assert seen == ["forward"] and row["convext_s"] == pytest.approx(2 * base["convext_s"])
    assert row["bytes"] == base["bytes"]  # the table's MB stay the minimum


def test_command_writes_labelled_table(tmp_path):
    out = tmp_path / "r.md"
    assert roofline.main(["--suite", "quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "MODELLED, not measured" in text.splitlines()[0]
    rows = [l for l in text.splitlines() if l.startswith("| ") and "|" in l[2:]]
    per_shape = len(roofline.DTYPES) * len(roofline.DIRECTIONS)
    assert sum(l.split(" | ")[0][2:] in {s.name for s in suites.QUICK}
               for l in rows) == len(suites.QUICK) * per_shape
    with pytest.raises(SystemExit):
        roofline.main(["--suite", "nope"])


def test_committed_table_is_current():
    """benchmarks/results/roofline-h100.md is what the model gives today; after
    changing the model or the suites, regenerate it with
    python -m convext.bench.roofline --out benchmarks/results/roofline-h100.md"""
    expected = roofline.markdown(roofline.rows(suites.ALL), command=(
        "python -m convext.bench.roofline --out benchmarks/results/roofline-h100.md"))
    assert TABLE.read_text() == expected, "stale: regenerate (see this test's docstring)"
