"""The bad-input table: malformed and extreme calls, each run through torch
and convext live and compared: the same exception type and message, or the
same value. Calls that once corrupted memory or that could crash run in a
subprocess, so a crash fails one case instead of killing the run.

Where convext deliberately differs, DIFFERENCES says how and why; the test
then checks that exact outcome. `python tests/test_bad_inputs.py --counts`
prints how many cases are the same / the same type with other text /
different (the numbers quoted in the README).
"""
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convext

TORCH_FN = {1: F.conv1d, 2: F.conv2d}
CONVEXT_FN = {1: convext.conv1d, 2: convext.conv2d}
BIG = 2 ** 62  # torch's padding limit is BIG - 1


@dataclass
class Case:
    dims: int
    args: tuple
    kwargs: dict = field(default_factory=dict)
    crash: bool = False  # run in a subprocess


def _t(*shape, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


def _ramp(*shape):
    return torch.arange(1.0, 1.0 + int(np.prod(shape))).reshape(shape)


X1, W1 = _t(1, 1, 5), _t(1, 1, 3)
X2, W2 = _t(1, 1, 5, 5), _t(1, 1, 3, 3)
XB, WB = _t(2, 4, 8, 8), _t(6, 4, 3, 3)     # float, N > 1: torch takes oneDNN
XD, WD = XB.double(), WB.double()           # float64: torch's slow path
XR, WR = _ramp(1, 1, 5), torch.tensor([[[1.0, 10.0, 100.0]]])


def _nested_jagged():
    return torch.nested.nested_tensor([_t(1, 5), _t(1, 6)], layout=torch.jagged)


CASES = {
    # -- 1: sizes that overflowed int64 and wrote past buffers ---------------
    "dilation_2^62_padding_2^62_1d": Case(1, (X1, W1), dict(dilation=BIG, padding=BIG), True),
    "dilation_2^61_padding_2^61_1d": Case(1, (XR, WR), dict(dilation=BIG // 2, padding=BIG // 2),
                                          True),
    "dilation_2^61_padding_2^61_2d": Case(2, (X2, W2), dict(dilation=BIG // 2,
                                                            padding=BIG // 2), True),
    "dilation_2^61_padding_2^61_stride_2^61": Case(
        2, (X2, W2), dict(dilation=BIG // 2, padding=BIG // 2, stride=BIG // 2), True),
    "dilation_2^61_padding_2^61_depthwise": Case(
        2, (_t(1, 2, 5, 5), _t(2, 1, 3, 3)), dict(dilation=BIG // 2, padding=BIG // 2, groups=2),
        True),
    "dilation_2^61_padding_2^61_channels_last": Case(
        2, (_t(1, 2, 5, 5).to(memory_format=torch.channels_last), _t(3, 2, 3, 3)),
        dict(dilation=(1, BIG // 2), padding=(1, BIG // 2)), True),
    "padding_2^62-1": Case(1, (X1, W1), dict(padding=BIG - 1), True),
    "padding_2^62-1_stride_2^62": Case(1, (X1, W1), dict(padding=BIG - 1, stride=BIG), True),
    "padding_2^62-1_2d_tuple": Case(2, (X2, W2), dict(padding=(BIG - 1, 0)), True),
    "padding_2^33_stride_2^33_2d": Case(2, (_t(1, 2, 8, 1), _t(2, 2, 2, 4)),
                                        dict(stride=(1, 2 ** 33 + 2), padding=(0, 2 ** 33),
                                             dilation=(3, 1))),
    "padding_2^61_stride_2^61": Case(2, (X2, W2), dict(padding=BIG // 2, stride=BIG // 2), True),
    # -- 2: wrong values where torch raises or differs ------------------------
    "stride_2^63-1_1d": Case(1, (X1, W1), dict(stride=2 ** 63 - 1), True),
    "stride_2^63-5_1d": Case(1, (X1, W1), dict(stride=2 ** 63 - 5), True),
    "stride_2^63-1_2d": Case(2, (X2, W2), dict(stride=2 ** 63 - 1), True),
    "stride_2^63-1_padding_1": Case(2, (X2, W2), dict(stride=2 ** 63 - 1, padding=1), True),
    "stride_2^63-1_depthwise": Case(2, (_t(1, 2, 5, 5), _t(2, 1, 3, 3)),
                                    dict(stride=2 ** 63 - 1, groups=2), True),
    "padding_2^63-1": Case(1, (X1, W1), dict(padding=2 ** 63 - 1)),
    "padding_2^62": Case(1, (X1, W1), dict(padding=BIG)),
    "padding_2^62+1_2d_dim1": Case(2, (X2, W2), dict(padding=(1, BIG + 1))),
    "padding_2^62+1_and_dilation_0": Case(2, (X2, W2), dict(padding=BIG + 1, dilation=0)),
    "padding_2^62+1_and_stride_0": Case(2, (X2, W2), dict(padding=BIG + 1, stride=0)),
    "padding_2^62+1_and_groups_0": Case(2, (X2, W2), dict(padding=BIG + 1, groups=0)),
    "padding_-2^63": Case(2, (X2, W2), dict(padding=-2 ** 63)),
    "dilation_-2^63": Case(2, (X2, W2), dict(dilation=-2 ** 63)),
    "stride_-2^63": Case(1, (X1, W1), dict(stride=-2 ** 63)),
    "groups_2^63-1": Case(2, (X2, W2), dict(groups=2 ** 63 - 1)),
    "groups_-2^63": Case(2, (X2, W2), dict(groups=-2 ** 63)),
    "kernel_height_0": Case(2, (X2, _t(1, 1, 0, 3))),
    "kernel_width_0_1d": Case(1, (X1, _t(1, 1, 0))),
    "kernel_0_float_batch": Case(2, (_t(2, 1, 5, 5), _t(1, 1, 0, 3))),
    "kernel_0_padded_1d": Case(1, (X1, _t(1, 1, 0)), dict(padding=2)),
    "height_0_padding": Case(2, (_t(2, 1, 0, 5), W2), dict(padding=2)),
    "width_0_padding_1d": Case(1, (_t(2, 1, 0), W1), dict(padding=2)),
    "width_0_padding_kernel_0_1d": Case(1, (_t(2, 1, 0), _t(1, 1, 0)), dict(padding=2)),
    "width_0_no_padding": Case(2, (_t(2, 1, 5, 0), _t(1, 1, 3, 1))),
    "channels_0": Case(2, (_t(2, 0, 5, 5), _t(3, 0, 3, 3), _t(3))),
    "channels_0_1d": Case(1, (_t(2, 0, 5), _t(3, 0, 3), _t(3))),
    "channels_0_grouped": Case(2, (_t(2, 0, 5, 5), _t(4, 0, 3, 3), _t(4)), dict(groups=2)),
    "channels_0_strided_padded": Case(2, (_t(2, 0, 5, 5), _t(3, 0, 3, 3)),
                                      dict(stride=2, padding=1)),
    "channels_0_channels_last": Case(2, (_t(2, 0, 5, 5).to(memory_format=torch.channels_last),
                                         _t(3, 0, 3, 3))),
    "channels_0_batch_0": Case(2, (_t(0, 0, 5, 5), _t(3, 0, 3, 3))),
    "batch_0": Case(2, (_t(0, 2, 5, 5), _t(3, 2, 3, 3), _t(3))),
    "batch_0_height_0_padding": Case(2, (_t(0, 2, 0, 5), _t(3, 2, 3, 3)), dict(padding=1)),
    "weight_meta": Case(2, (X2, W2.to("meta"))),
    "weight_meta_1d": Case(1, (X1, W1.to("meta"))),
    "bias_meta": Case(2, (X2, W2, _t(1).to("meta"))),
    "dilation_2^62": Case(1, (XR, WR), dict(dilation=BIG), True),
    "dilation_2^62_kernel_2": Case(1, (XR, WR[..., :2]), dict(dilation=BIG), True),
    "dilation_2^61+1": Case(1, (XR, WR), dict(dilation=BIG // 2 + 1), True),
    "dilation_2^62_kernel_5": Case(1, (XR, _ramp(1, 1, 5)), dict(dilation=BIG), True),
    "dilation_2^62_2d": Case(2, (X2, W2), dict(dilation=(BIG, 1)), True),
    # -- 5: message text ------------------------------------------------------
    "dilation_0": Case(2, (X2, W2), dict(dilation=0)),
    "dilation_0_1d": Case(1, (XD[:, :, 0], WD[:, :, 0]), dict(dilation=0)),
    "dilation_0_in_tuple": Case(2, (XD, WD), dict(dilation=(1, 0))),
    "dilation_0_onednn": Case(2, (XB, WB), dict(dilation=0)),
    "sparse_input": Case(2, (XB.to_sparse(), WB)),
    "sparse_input_1d": Case(1, (X1.to_sparse(), W1)),
    "sparse_weight": Case(2, (XB, WB.to_sparse())),
    "sparse_bias": Case(2, (XB, WB, _t(6).to_sparse())),
    "bias_float": Case(1, (X1, W1, 1.0)),
    "bias_str": Case(1, (X1, W1, "a")),
    "padding_2^64": Case(1, (X1, W1), dict(padding=2 ** 64)),
    "padding_-2^64": Case(1, (X1, W1), dict(padding=-2 ** 64)),
    "stride_2^63": Case(1, (X1, W1), dict(stride=2 ** 63)),
    "groups_2^64": Case(1, (X1, W1), dict(groups=2 ** 64)),
    "padding_tuple_2^64": Case(1, (X1, W1), dict(padding=(2 ** 64,))),
    "jagged_nested_input": Case(1, (_nested_jagged(), W1)),
    "stride_float": Case(1, (X1, W1), dict(stride=1.0)),
    "stride_none": Case(1, (X1, W1), dict(stride=None)),
    "stride_str": Case(2, (X2, W2), dict(stride="a")),
    "stride_bool": Case(1, (X1, W1), dict(stride=True)),
    "stride_tuple_float": Case(1, (X1, W1), dict(stride=(1.5,))),
    "stride_tuple_bool": Case(2, (X2, W2), dict(stride=(True, 1))),
    "stride_float_tensor": Case(1, (X1, W1), dict(stride=torch.tensor(2.0))),
    "stride_positional_float": Case(2, (X2, W2, None, 1.0)),
    "padding_float": Case(1, (X1, W1), dict(padding=1.0)),
    "padding_none": Case(2, (X2, W2), dict(padding=None)),
    "dilation_float": Case(2, (X2, W2), dict(dilation=2.0)),
    "groups_float": Case(1, (X1, W1), dict(groups=1.0)),
    "groups_none": Case(1, (X1, W1), dict(groups=None)),
    "groups_bool": Case(1, (X1, W1), dict(groups=True)),
    "input_list": Case(1, ([[[1.0, 2.0, 3.0]]], W1)),
    "input_numpy": Case(1, (np.ones((1, 1, 5), dtype=np.float32), W1)),
    "weight_list": Case(1, (X1, [[[1.0, 2.0, 3.0]]])),
    "weight_missing": Case(1, (X1,)),
    "unknown_keyword": Case(1, (X1, W1), dict(foo=1)),
    "too_many_arguments": Case(1, (X1, W1, None, 1, 0, 1, 1, 1)),
    "input_given_twice": Case(1, (X1, W1), dict(input=X1)),
    "same_huge_dilation": Case(1, (X1, W1), dict(padding="same", dilation=BIG), True),
    "same_strided_huge_padding_types": Case(2, (X2, W2), dict(padding="same", stride=(1, 2))),
}

# Where convext deliberately gives another outcome: case -> (verdict, why).
DIFFERENCES = {
    "dilation_2^62": ("different", "torch's int64 kernel-span arithmetic overflows (2 * 2^62 "
                      "wraps) and it returns a value; convext raises torch's kernel-size error "
                      "with the exact span"),
    "dilation_2^62_kernel_5": ("different", "torch's tap offset 4 * 2^62 wraps to 0 and it "
                               "reads the input twice; convext raises the kernel-size error"),
    "dilation_2^62_2d": ("different", "as dilation_2^62"),
    "same_huge_dilation": ("type", "torch's 'same' padding overflows to a negative value "
                           "('negative padding is not supported'); convext reports the "
                           "padding it needs, past torch's limit of 2^62 - 1"),
    "padding_2^33_stride_2^33_2d": ("different", "torch's dilated 2D CPU path loses a padding "
                                    "past 2^31 and returns 1 output column; the exact count, "
                                    "(1 + 2 * 2^33 - 4) // (2^33 + 2) + 1 = 2, is convext's "
                                    "(torch's conv1d agrees)"),
    "weight_meta": ("different", "torch returns uninitialised CPU memory; convext raises "
                    "torch's device-mismatch error"),
    "weight_meta_1d": ("different", "as weight_meta"),
    "bias_meta": ("different", "as weight_meta"),
    "kernel_0_float_batch": ("type", "torch's oneDNN path fails with 'could not create a "
                             "primitive descriptor'; convext gives its slow path's message"),
    "dilation_0_onednn": ("type", "torch's oneDNN path says 'non-positive dilation is not "
                          "supported'; convext gives its slow path's message, with the values"),
    "padding_-2^63": ("type", "below -2^62 torch's SymInt cannot hold the value and it says "
                      "'SymIntArrayRef expected to contain only concrete integers'; convext "
                      "reports the actual problem (negative padding)"),
    "dilation_-2^63": ("type", "as padding_-2^63"),
    "stride_-2^63": ("type", "as padding_-2^63"),
    "sparse_input_1d": ("type", "torch's slow path says 'unsupported memory format option "
                        "Contiguous'; convext gives its oneDNN path's message"),
}


def _outcome(fn, case):
    try:
        return {"kind": "value", "value": fn(*case.args, **case.kwargs)}
    except Exception as e:  # noqa: BLE001 - every exception is an outcome here
        return {"kind": "error", "type": type(e).__name__, "message": str(e)}


def _same_value(a, b):
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if a.device.type == "meta" or a.numel() == 0:
        return a.stride() == b.stride() or a.numel() == 0
    return torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5)


def evaluate(name):
    """(verdict, detail): 'same', 'type' (same exception type, other text) or
    'different'. An error whose text starts with torch's counts as the same."""
    case = CASES[name]
    ours = _outcome(CONVEXT_FN[case.dims], case)
    theirs = _outcome(TORCH_FN[case.dims], case)
    if ours["kind"] == theirs["kind"] == "error":
        # torch's text for a failed int unpack carries its C++ stack trace
        theirs["message"] = theirs["message"].split("\nException raised from")[0]
        detail = f"torch {theirs['type']}: {theirs['message']!r}; " \
                 f"convext {ours['type']}: {ours['message']!r}"
        if ours["type"] != theirs["type"]:
            return "different", detail
        return ("same" if ours["message"].startswith(theirs["message"]) else "type"), detail
    if ours["kind"] == theirs["kind"] == "value":
        a, b = ours["value"], theirs["value"]
        detail = f"values: torch {tuple(b.shape)} {b.device}, convext {tuple(a.shape)} {a.device}"
        return ("same" if _same_value(a, b) else "different"), detail
    return "different", f"torch {_describe(theirs)}; convext {_describe(ours)}"


def _describe(outcome):
    if outcome["kind"] == "error":
        return f"raises {outcome['type']}: {outcome['message'][:200]!r}"
    return f"returns a {tuple(outcome['value'].shape)} tensor"


def _run_in_subprocesses(names):
    """evaluate() for each name in fresh interpreters, one after another in
    the same child while it lives: a child that dies gives its current case
    the verdict 'crash', and the rest go on in a new child."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    results, todo = {}, list(names)
    while todo:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--cases", *todo],
                              capture_output=True, text=True, env=env, timeout=900)
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                item = json.loads(line)
                results[item["name"]] = (item["verdict"], item["detail"])
        todo = [n for n in todo if n not in results]
        if todo:
            assert proc.returncode != 0, proc.stderr[-3000:]
            results[todo.pop(0)] = ("crash", f"exit {proc.returncode}: {proc.stderr[-3000:]}")
    return results


@pytest.fixture(scope="module")
def isolated_results():
    return _run_in_subprocesses([n for n, c in CASES.items() if c.crash])


@pytest.mark.parametrize("name", CASES)
def test_bad_input_matches_torch(name, isolated_results):
    case = CASES[name]
    verdict, detail = isolated_results[name] if case.crash else evaluate(name)
    expected = DIFFERENCES.get(name, ("same", ""))[0]
    assert verdict == expected, f"{name}: {verdict} (expected {expected}): {detail}"


def test_table_has_every_defect_and_enough_cases():
    assert len(CASES) >= 60
    assert set(DIFFERENCES) <= set(CASES)


def counts():
    tally = {"same": 0, "type": 0, "different": 0, "crash": 0}
    isolated = _run_in_subprocesses([n for n, c in CASES.items() if c.crash])
    for name, case in CASES.items():
        verdict, _ = isolated[name] if case.crash else evaluate(name)
        tally[verdict] += 1
    return tally


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cases"]:
        for name in sys.argv[2:]:
            verdict, detail = evaluate(name)
            print(json.dumps({"name": name, "verdict": verdict, "detail": detail}), flush=True)
    elif sys.argv[1:2] == ["--counts"]:
        print(json.dumps(counts()))
