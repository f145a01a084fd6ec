"""convext.explain, every number held to torch: shapes against layers really
run on the CPU, receptive fields and dependencies against gradients (an
input cell is in an output's field exactly when the gradient is non-zero;
positive weights and inputs, so nothing cancels), max pooling against
perturbation (its gradient only reaches the arg-max), MACs against torch's
FlopCounterMode, error texts against torch's own exceptions."""
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convext
from convext.explain import diagnose, geometry

ROOT = Path(__file__).resolve().parents[1]


def _positive(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) + 0.5)
    return model.double().eval()


def _run_shapes(model, shape):
    """Output shape of every leaf layer, in execution order, on the CPU."""
    shapes = []
    hooks = [m.register_forward_hook(lambda m, a, o: shapes.append(tuple(o.shape)))
             for m in model.modules() if not list(m.children())]
    dtype = next((p.dtype for p in model.parameters()), torch.float64)
    with torch.no_grad():
        out = model(torch.rand(shape, dtype=dtype))
    for h in hooks:
        h.remove()
    return shapes, tuple(out.shape)


def _grad_sets(model, shape, only=None):
    """For every spatial output position (or those in `only`): the set of
    input positions with a non-zero gradient (summed over batch 0's channels)."""
    x = (torch.rand(shape, dtype=torch.float64) + 0.5).requires_grad_()
    y = model(x)
    dims = len(shape) - 2
    sets = {}
    for pos in only or _positions(y.shape[2:]):
        (g,) = torch.autograd.grad(y[(0, slice(None)) + pos].sum(), x, retain_graph=True)
        nz = g[0].abs().sum(0).nonzero().tolist()
        sets[pos if dims == 2 else pos[0]] = sorted(tuple(c) if dims == 2 else c[0]
                                                    for c in nz)
    return sets


def _perturb_sets(model, shape):
    """Same as _grad_sets, by raising one input cell at a time from zero
    (exact for max pooling, whose gradient only reaches the arg-max)."""
    dims = len(shape) - 2
    with torch.no_grad():
        x = torch.zeros(shape, dtype=torch.float64)
        base = model(x)
        sets = {}
        for cell in _positions(shape[2:]):
            x2 = x.clone()
            x2[(0, slice(None)) + cell] = 1.0
            changed = (model(x2) - base)[0].abs().sum(0).nonzero().tolist()
            for o in changed:
                key = tuple(o) if dims == 2 else o[0]
                sets.setdefault(key, []).append(cell if dims == 2 else cell[0])
    return {k: sorted(v) for k, v in sets.items()}


def _positions(sizes):
    if len(sizes) == 1:
        return [(i,) for i in range(sizes[0])]
    return [(h, w) for h in range(sizes[0]) for w in range(sizes[1])]


def _check_dependencies(model, shape, e, sets):
    dims = len(shape) - 2
    out_sizes = e.output_shape[2:]
    spans = []
    for pos in _positions(out_sizes):
        key = pos if dims == 2 else pos[0]
        want = sets.get(key, [])
        assert sorted(e.inputs_of(key).inside) == want, (key, model)
        if want:
            spans.append(tuple(max(c[i] for c in want) - min(c[i] for c in want) + 1
                               for i in range(dims)) if dims == 2 else want[-1] - want[0] + 1)
    # every input position: the outputs it affects are exactly those whose set holds it
    for cell in _positions(shape[2:]):
        key = cell if dims == 2 else cell[0]
        want = sorted(o for o, s in sets.items() if key in s)
        assert e.outputs_of(key) == want, (key, model)
    return spans


# ---- random chains ----------------------------------------------------------

def _random_layer(rng, dims, c, maxpool):
    kinds = ["conv", "conv", "transposed", "avgpool", "relu"] + (["maxpool"] * 2 if maxpool
                                                                 else [])
    kind = rng.choice(kinds)
    k = rng.randint(1, 4)
    s = rng.randint(1, 3)
    d = rng.randint(1, 3)
    tup = (lambda v: v) if dims == 1 else (lambda v: (v, rng.randint(1, 3)))
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    if kind == "relu":
        return nn.ReLU(), c
    if kind == "conv":
        out = rng.randint(1, 3)
        mode = rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"])
        pad = rng.choice([0, 1, 2, "same"]) if s == 1 else rng.randint(0, 2)
        if pad == "same":
            return conv(c, out, tup(k), padding="same", dilation=tup(d), padding_mode=mode), out
        return conv(c, out, tup(k), stride=tup(s), padding=tup(pad), dilation=tup(d),
                    padding_mode=mode), out
    if kind == "transposed":
        out = rng.randint(1, 3)
        tconv = nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d
        op = rng.randint(0, max(s, d) - 1)
        return tconv(c, out, k, stride=s, padding=rng.randint(0, 1), dilation=d,
                     output_padding=op), out
    pool = {("avgpool", 1): nn.AvgPool1d, ("avgpool", 2): nn.AvgPool2d,
            ("maxpool", 1): nn.MaxPool1d, ("maxpool", 2): nn.MaxPool2d}[kind, dims]
    kw = dict(stride=s, padding=rng.randint(0, k // 2), ceil_mode=rng.random() < 0.3)
    if kind == "maxpool":
        kw["dilation"] = d
    return pool(k, **kw), c


def _random_model(seed, dims, maxpool=False):
    rng = random.Random(seed)
    while True:
        layers, c = [], rng.randint(1, 3)
        c0 = c
        for _ in range(rng.randint(1, 4)):
            layer, c = _random_layer(rng, dims, c, maxpool)
            layers.append(layer)
        sizes = (rng.randint(8, 40),) if dims == 1 else (rng.randint(5, 12), rng.randint(5, 12))
        model = _positive(nn.Sequential(*layers))
        shape = (1, c0) + sizes
        try:
            _run_shapes(model, shape)
        except RuntimeError:
            continue
        if maxpool == any(isinstance(m, geometry.MAXPOOL) for m in layers) and \
                any(isinstance(m, geometry.KNOWN) for m in layers):
            return model, shape


@pytest.mark.parametrize("seed", range(40))
def test_random_1d_chain_matches_torch(seed):
    model, shape = _random_model(seed, 1)
    e = convext.explain(model, shape)
    shapes, out = _run_shapes(model, shape)
    assert e.error is None and e.output_shape == out
    assert [la.output_shape for la in e.layers] == shapes
    for layer, s in zip(e.layers, shapes):
        for f in layer.formula:
            assert f["value"] == s[-1] and f["filled"].endswith(f"= {s[-1]}")
    spans = _check_dependencies(model, shape, e, _grad_sets(model, shape))
    if any(getattr(m, "padding_mode", "") == "circular" for m in model):
        return   # border outputs also see the cells wrapped around from the far end
    assert max(spans) <= e.receptive_field
    # on an input long enough to hold interior outputs, the widest gradient
    # footprint is exactly the receptive field
    period = 1   # outputs repeat their pattern every `period` positions
    for m in model:
        period *= m.stride[0] if isinstance(m, geometry.TRANSPOSED) else 1
    long = (1, shape[1], 4 * e.receptive_field + 2 * period + 20)
    e2 = convext.explain(model, long)
    mid = e2.output_shape[-1] // 2
    sets = _grad_sets(model, long, [(o,) for o in range(mid - period, mid + period + 1)])
    assert max(v[-1] - v[0] + 1 for v in sets.values() if v) == e2.receptive_field


@pytest.mark.parametrize("seed", range(12))
def test_random_2d_chain_matches_torch(seed):
    model, shape = _random_model(100 + seed, 2)
    e = convext.explain(model, shape)
    shapes, out = _run_shapes(model, shape)
    assert e.error is None and e.output_shape == out
    assert [la.output_shape for la in e.layers] == shapes
    for layer, s in zip(e.layers, shapes):
        assert [f["value"] for f in layer.formula] == list(s[-2:]) or not layer.formula
    _check_dependencies(model, shape, e, _grad_sets(model, shape))


@pytest.mark.parametrize("seed", range(10))
def test_maxpool_chains_match_perturbation(seed):
    model, shape = _random_model(200 + seed, 1 + seed % 2, maxpool=True)
    e = convext.explain(model, shape)
    assert e.output_shape == _run_shapes(model, shape)[1]
    _check_dependencies(model, shape, e, _perturb_sets(model, shape))


def test_padding_cells_of_a_single_layer():
    # cells (padding included) = gradient footprint on the explicitly padded input
    conv = _positive(nn.Conv1d(2, 1, 3, stride=2, padding=2, dilation=2))
    e = convext.explain(conv, (1, 2, 9))
    x = (torch.rand(1, 2, 13, dtype=torch.float64) + 0.5).requires_grad_()
    y = F.conv1d(x, conv.weight, stride=2, dilation=2)
    for o in range(y.shape[-1]):
        (g,) = torch.autograd.grad(y[0, 0, o], x, retain_graph=True)
        want = [i - 2 for i in g[0].abs().sum(0).nonzero()[:, 0].tolist()]
        region = e.inputs_of(o)
        assert region.cells == want
        assert region.padding == [c for c in want if not 0 <= c < 9]


def test_receptive_field_textbook_values():
    e = convext.explain(nn.Sequential(*[nn.Conv1d(1, 1, 3) for _ in range(3)]), (1, 1, 20))
    assert e.receptive_field == 7 and e.jump == 1
    e = convext.explain(nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3)),
                        (1, 1, 20, 20))
    assert e.receptive_field == (7, 7) and e.jump == (2, 2)
    assert [la.receptive_field for la in e.layers] == [(3, 3), (7, 7)]


# ---- costs ------------------------------------------------------------------

@pytest.mark.parametrize("layer, shape", [
    (nn.Conv1d(4, 6, 5, padding=2, groups=2), (3, 4, 50)),
    (nn.Conv2d(3, 8, (3, 5), stride=2), (2, 3, 17, 21)),
    (nn.ConvTranspose1d(4, 6, 3, stride=2, groups=2), (2, 4, 9)),
    (nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1), (1, 3, 6, 7)),
    (nn.Conv1d(3, 5, 3), (3, 10)),
    (convext.Conv2d(2, 4, 3, padding=1, bias=False), (1, 2, 8, 8)),
    (nn.Sequential(nn.Conv1d(3, 4, 3), nn.Flatten(), nn.Linear(32, 5)), (2, 3, 10)),
])
def test_macs_and_params_match_torch(layer, shape):
    e = convext.explain(layer, shape)
    reference = layer
    if isinstance(layer, convext.Conv2d):   # FlopCounterMode does not know convext's op
        reference = nn.Conv2d(2, 4, 3, padding=1, bias=False)
    with FlopCounterMode(display=False) as counter:
        reference(torch.rand(shape))
    assert e.macs * 2 == counter.get_total_flops()
    assert e.params == sum(p.numel() for p in layer.parameters())
    assert sum(la.params for la in e.layers) == e.params


# ---- the report -------------------------------------------------------------

def test_report_has_the_issue_formula_and_glossed_numbers():
    e = convext.explain(nn.Conv1d(3, 8, 5, padding=2), (1, 3, 100))
    text = str(e)
    assert "L_out = floor((100 + 2*2 - 1*(5-1) - 1) / 1) + 1 = 100" in text
    assert "8 = out_channels" in text and "5 = kernel L" in text
    assert "MACs            12,000" in text and "parameters      128" in text
    assert e.output_shape == (1, 8, 100) and e.params == 128 and e.macs == 12000
    assert e.receptive_field == 5 and e.jump == 1
    d = json.loads(json.dumps(e.to_dict()))
    assert d["layers"][0]["formula"][0]["value"] == 100
    assert d["output_shape"] == [1, 8, 100]


def test_transposed_and_unbatched():
    e = convext.explain(nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1),
                        (2, 5, 6))
    assert e.output_shape == tuple(nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1,
                                                      output_padding=1)(torch.rand(2, 5, 6)).shape)
    assert "H_out = (5 - 1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 10" in str(e)
    assert e.jump == (0.5, 0.5)
    assert "(unbatched: no N axis)" in str(e)


def test_functional_keyword_arguments():
    w = torch.rand(4, 2, 3)
    e = convext.explain(dict(weight=w, stride=2, padding=1, groups=2), (1, 4, 11))
    assert e.output_shape == tuple(F.conv1d(torch.rand(1, 4, 11), w, stride=2, padding=1,
                                            groups=2).shape)
    e = convext.explain(dict(weight=(3, 2, 2, 2), transposed=True, stride=2), (1, 3, 4, 4))
    assert e.output_shape == (1, 2, 8, 8)
    with pytest.raises(TypeError, match="keyword arguments of a functional conv"):
        convext.explain(dict(stride=2), (1, 3, 4))


def test_the_users_model_is_not_touched():
    model = nn.Sequential(nn.Conv1d(3, 4, 3), nn.ReLU())
    seen = []
    model[0].register_forward_hook(lambda *a: seen.append(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    convext.explain(model, (2, 3, 10))
    assert not seen
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(model[0]._forward_hooks) == 1 and not model[1]._forward_hooks


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3, padding=1)
        self.pool = nn.MaxPool1d(2)

    def forward(self, x):
        y = F.relu(self.conv(x)) * 2        # element-wise code keeps positions
        return self.pool(y + x)            # two paths: unknown from here


def test_unknown_layers_still_get_shapes():
    model = nn.Sequential(nn.Conv1d(3, 4, 3), nn.AdaptiveAvgPool1d(5), nn.Conv1d(4, 2, 2))
    e = convext.explain(model, (1, 3, 20))
    assert [la.output_shape for la in e.layers] == _run_shapes(model, (1, 3, 20))[0]
    assert e.layers[0].receptive_field == 3
    assert e.layers[1].receptive_field is None and e.layers[2].receptive_field is None
    assert "AdaptiveAvgPool1d" in e.layers[2].field_note and e.receptive_field is None
    assert "layer=0" in str(pytest.raises(ValueError, e.inputs_of, 0).value)
    assert e.inputs_of(4, layer=0).inside == [4, 5, 6]

    e = convext.explain(_Residual(), (1, 2, 10))
    assert e.output_shape == (1, 2, 5)
    assert e.layers[0].receptive_field == 3
    assert "different paths" in e.layers[1].field_note


def test_index_out_of_range():
    e = convext.explain(nn.Conv1d(1, 1, 3), (1, 1, 5))
    with pytest.raises(IndexError, match="outside the spatial size"):
        e.inputs_of(3)
    with pytest.raises(IndexError, match="outside the spatial size"):
        e.outputs_of((1, 1))


# ---- errors -------------------------------------------------------------------

def _torch_error(layer, shape):
    with pytest.raises(Exception) as info:
        layer(torch.rand(shape))
    return f"{type(info.value).__name__}: {info.value}"


@pytest.mark.parametrize("layer, shape, why, fix", [
    (nn.Conv1d(3, 2, 3), (1, 3, 2), "input length 2 < kernel 3",
     "pad by 1 (padding=1), or use kernel_size=2"),
    (nn.Conv1d(3, 2, 3, dilation=3), (1, 3, 5), "dilated kernel 3*(3-1)+1 = 7",
     "pad by 1 (padding=1)"),
    (nn.Conv1d(3, 2, 3), (1, 4, 5), "the input has 4 channels", "in_channels=4"),
    (convext.Conv2d(3, 2, 3), (1, 3, 2, 8), "input height 2 < kernel 3", "kernel_size=2"),
    (nn.Conv2d(3, 2, 3), (1, 3, 8), "the input has 1 channels", "in_channels=1"),
    (nn.Conv1d(3, 2, 3), (1, 1, 3, 5), "reads (C, L) or (N, C, L)", "use Conv2d"),
    (nn.MaxPool1d(3, padding=2), (1, 3, 8), "more than half the kernel", "padding=1"),
    (nn.AvgPool2d(3), (1, 3, 2, 2), "input height 2 < kernel 3", "kernel_size=2"),
    (nn.ConvTranspose1d(3, 2, 3, stride=2, output_padding=2), (1, 3, 5),
     "output_padding 2", "output_padding=1"),
    (nn.ConvTranspose1d(3, 2, 2, padding=3), (1, 3, 2), "crops away every output",
     "padding="),
])
def test_errors_are_explained_with_torch_text(layer, shape, why, fix):
    e = convext.explain(layer, shape)
    assert e.error is not None and e.output_shape is None
    assert e.error["torch_error"] == _torch_error(layer, shape)
    assert why in " ".join(e.error["arithmetic"]) and fix in ", ".join(e.error["fixes"])
    text = str(e)
    assert e.error["torch_error"] in text and "fix" in text


def test_error_from_functional_same_with_stride():
    w = torch.rand(2, 3, 3)
    e = convext.explain(dict(weight=w, stride=2, padding="same"), (1, 3, 7))
    with pytest.raises(RuntimeError) as info:
        F.conv1d(torch.rand(1, 3, 7), w, stride=2, padding="same")
    assert e.error["torch_error"] == f"RuntimeError: {info.value}"
    assert "use stride=1" in e.error["fixes"]


def test_error_deep_in_a_model_names_the_layer():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.MaxPool1d(2), nn.Conv1d(4, 4, 5))
    e = convext.explain(model, (1, 1, 10))
    assert e.error["layer"] == 2 and "[2]" in e.error["where"]
    assert e.layers[1].output_shape == (1, 4, 4)
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Conv1d(8, 4, 3))
    e = convext.explain(model, (1, 1, 10))
    assert e.error["torch_error"] == _torch_error(model, (1, 1, 10))
    assert "from [1] ReLU, whose output is (1, 4, 8)" in e.error["arithmetic"][1]
    assert "build the layer with in_channels=4" in e.error["fixes"]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("seed", range(300))
def test_check_agrees_with_torch(seed):
    """diagnose.check predicts an error exactly when torch raises one."""
    rng = random.Random(seed)
    dims = rng.choice([1, 2])
    kind = rng.choice(["conv", "transposed", "maxpool", "avgpool"])
    k, s, p, d = rng.randint(1, 5), rng.randint(1, 3), rng.randint(0, 3), rng.randint(1, 3)
    cin = rng.randint(1, 3)
    if kind == "conv":
        pad = "same" if rng.random() < 0.2 else p
        layer = (nn.Conv1d if dims == 1 else nn.Conv2d)(cin, 2, k, padding=pad,
                                                         dilation=d,
                                                         stride=1 if pad == "same" else s)
    elif kind == "transposed":
        layer = (nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d)(
            cin, 2, k, stride=s, padding=p, dilation=d, output_padding=rng.randint(0, 2))
    elif kind == "maxpool":
        layer = (nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(
            k, stride=s, padding=p, dilation=d, ceil_mode=rng.random() < 0.4)
    else:
        layer = (nn.AvgPool1d if dims == 1 else nn.AvgPool2d)(
            k, stride=s, padding=p, ceil_mode=rng.random() < 0.4)
    batch = [2] if rng.random() < 0.7 else []
    channels = cin if rng.random() < 0.85 else cin + 1
    shape = tuple(batch + [channels] + [rng.randint(1, 7) for _ in range(dims)])
    try:
        layer(torch.rand(shape))
        torch_ok = True
    except RuntimeError:
        torch_ok = False
    geo = geometry.from_module(layer)
    if kind == "transposed" and dims == 2 and len(shape) > 2 and any(
            geometry.out_size(geo, i, shape[-2 + i]) == 0 for i in range(2)):
        return   # torch's CPU answer depends on the backend (oneDNN returns an empty tensor)
    predicted = diagnose.check(layer, geo, shape)
    assert (predicted is None) == torch_ok, (layer, shape, predicted)


# ---- pitfalls -----------------------------------------------------------------

def test_pitfall_2d_pool_on_3d_tensor():
    model = nn.Sequential(nn.Conv1d(3, 4, 3), nn.MaxPool2d(2))
    e = convext.explain(model, (2, 3, 10))
    assert any("pools across your channels axis" in w for w in e.layers[1].warnings)
    assert e.layers[1].receptive_field is None
    # a plain 2D model on an unbatched image is fine
    e = convext.explain(nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2)), (3, 10, 10))
    assert not e.warnings


def test_pitfall_even_kernel_same():
    e = convext.explain(nn.Conv1d(1, 1, 4, padding="same"), (1, 1, 10))
    assert any("pads 1 before and 2 after" in w for w in e.warnings)
    assert e.inputs_of(0).cells == [-1, 0, 1, 2]


@pytest.mark.parametrize("layer, length, cause", [
    (nn.Conv1d(1, 1, 2, stride=4), 16, "stride 4 > kernel span 2"),
    (nn.Conv1d(1, 1, 3, stride=2, dilation=2), 15, "shares the factor 2"),
    (nn.MaxPool1d(2, stride=3), 12, "stride 3 > kernel span 2"),
    (nn.Conv1d(1, 1, 3, stride=2), 10, "the last window ends before the input does"),
])
def test_pitfall_unread_inputs_match_zero_gradient(layer, length, cause):
    layer = _positive(layer)
    e = convext.explain(layer, (1, 1, length))
    (warning,) = [w for w in e.warnings if "never read" in w]
    assert cause in warning
    x = (torch.rand(1, 1, length, dtype=torch.float64) + 0.5).requires_grad_()
    (g,) = torch.autograd.grad(layer(x).sum(), x) if not isinstance(layer, nn.MaxPool1d) \
        else (None,)
    if g is not None:
        unread = (g[0, 0] == 0).nonzero()[:, 0].tolist()
        geo = geometry.from_module(layer)
        assert diagnose.unread_inputs(geo, 0, length) == unread


def test_no_pitfall_for_plain_layers():
    assert not convext.explain(nn.Conv1d(1, 1, 3, padding=1), (1, 1, 10)).warnings


# ---- drawing and CLI ----------------------------------------------------------

def test_text_drawing_marks_taps_and_padding():
    e = convext.explain(nn.Conv1d(3, 2, kernel_size=3, padding=1), (2, 3, 4))
    drawing = e.draw(0)
    assert "  L      -1  0  1  2  3  4" in drawing
    assert "  input   o  #  #  .  .  -" in drawing
    e = convext.explain(nn.Conv2d(1, 1, 3, padding=1), (1, 1, 4, 4))
    rows = e.draw((0, 3)).splitlines()
    assert rows[2].split() == ["H", "-1", "-", "-", "-", "o", "o", "o"]
    assert rows[3].split() == ["0", "-", ".", ".", "#", "#", "o"]
    assert rows[-2].split() == ["4"] + ["-"] * 6


def _cli(*args, capsys):
    from convext.explain.__main__ import main
    rc = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out.out, out.err)


def test_cli_runs_as_a_module():
    r = subprocess.run([sys.executable, "-m", "convext.explain",
                        "Conv1d(3, 2, kernel_size=3, padding=1)", "--input", "2,3,4", "--draw"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "L_out = floor((4 + 2*1 - 1*(3-1) - 1) / 1) + 1 = 4" in r.stdout
    assert "input   o  #  #" in r.stdout


def test_cli_json_and_errors(capsys):
    r = _cli("Conv1d(3, 8, 5); ReLU(); MaxPool1d(2)", "--input", "1,3,20", "--json",
             capsys=capsys)
    data = json.loads(r.stdout)
    assert data["output_shape"] == [1, 8, 8] and data["receptive_field"] == 6
    r = _cli("Conv1d(3, 4, 3); AdaptiveAvgPool1d(1)", "--input", "1,3,10", "--draw", "2",
             capsys=capsys)
    assert r.returncode == 0 and "pass layer=0" in r.stdout
    r = _cli("Conv1d(3, 4, 3); AdaptiveAvgPool1d(1)", "--input", "1,3,10", "--draw", "2",
             "--layer", "0", capsys=capsys)
    assert "input  . . # # # . . . . ." in r.stdout
    r = _cli("Conv1d(3, 2, 3)", "--input", "1,3,2", capsys=capsys)
    assert r.returncode == 1
    assert "Kernel size can't be greater than actual input size" in r.stdout
    assert "pad by 1 (padding=1), or use kernel_size=2" in r.stdout
    r = _cli("Conv1d(3, 2, 3, stride=2, padding='same')", "--input", "1,3,9", capsys=capsys)
    assert r.returncode == 1 and "not supported for strided" in r.stdout
    assert "use stride=1" in r.stdout


@pytest.mark.parametrize("spec", [
    "__import__('os').system('echo hi')",
    "Conv1d(3, 2, len('abc'))",
    "Conv1d(3, 2, 3).__class__",
    "Linear(3, 2)",
    "Conv1d(3, 2, **{'kernel_size': 3})",
])
def test_cli_refuses_anything_but_literal_layers(spec, capsys):
    r = _cli(spec, "--input", "1,3,9", capsys=capsys)
    assert r.returncode == 2 and "convext.explain:" in r.stderr and "hi" not in r.stdout


def test_cli_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    for spec, shape in [("Conv1d(1, 1, 3, padding=1); MaxPool1d(2)", "1,1,12"),
                        ("Conv2d(1, 1, 3, stride=2)", "1,1,9,9")]:
        path = tmp_path / "out.png"
        r = _cli(spec, "--input", shape, "--png", str(path), capsys=capsys)
        assert r.returncode == 0, r.stderr
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_shows_real_output(capsys):
    """The README's examples are what the code prints."""
    readme = (ROOT / "README.md").read_text()
    model = nn.Sequential(nn.Conv1d(1, 4, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
                          nn.Conv1d(4, 8, kernel_size=3, dilation=2))
    e = convext.explain(model, (1, 1, 32))
    for text in (str(e), str(e.inputs_of(0)), str(e.outputs_of(10)), e.draw(0)):
        assert text in readme
    for args in (["Conv2d(3, 16, 3, stride=2, padding=1); ReLU(); MaxPool2d(2); "
                  "Conv2d(16, 32, (3, 4), padding='same')", "--input", "8,3,32,32",
                  "--draw", "1,1"],
                 ["Conv1d(3, 2, 3)", "--input", "1,3,2"]):
        r = _cli(*args, capsys=capsys)
        assert r.stdout.rstrip("\n") in readme
