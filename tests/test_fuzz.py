"""Seeded differential fuzz against torch: random shapes and parameters
(stride past the kernel, dilation, numeric/'same'/'valid' padding, groups and
depthwise, unbatched and empty batches, zero channels, huge strides and
paddings where the call stays valid), every dtype, and layouts including
channels_last, sliced and expanded views. Each case compares the output and
every gradient with torch in float64, within conftest's bound: each dtype's
rounding over the case's reduction length.

CI runs FUZZ_COUNT cases (default 300) under pytest. A long run:

    python tests/test_fuzz.py --count 10000 [--seed 0]

prints each failing case (seed and parameters) and a summary; it exits
non-zero if any case failed.
"""
import argparse
import os
import random
import sys
import time
import traceback
import warnings

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import FLOAT_DTYPES, ConvCase, assert_close_to_torch  # noqa: E402

CI_COUNT = int(os.environ.get("FUZZ_COUNT", "300"))


def _params(rng, dims):
    kernel = [rng.choice([0, 1, 1, 2, 3, 3, 4, 5]) or 1 for _ in range(dims)]
    dilation = [rng.choice([1, 1, 1, 2, 3]) for _ in range(dims)]
    r = rng.random()
    if r < 0.15:
        return kernel, dilation, 1, "same"
    if r < 0.2:
        return kernel, dilation, rng.choice([1, 2]), "valid"
    stride = [rng.choice([1, 1, 2, 3, 5, 7]) for _ in range(dims)]
    padding = [rng.choice([0, 0, 1, 2, 4]) for _ in range(dims)]
    if rng.random() < 0.05:  # a huge stride: one output position
        stride[rng.randrange(dims)] = rng.choice([10 ** 9, 2 ** 62, 2 ** 63 - 1])
    return kernel, dilation, stride, padding


def random_case(rng):
    dims = rng.choice([1, 2])
    groups = rng.choice([1, 1, 1, 2, 3, 4])
    depthwise = rng.random() < 0.25
    per_group_in = 1 if depthwise else rng.randint(1, 5)
    C = per_group_in * groups
    if rng.random() < 0.03:
        C = 0  # zero channels: torch's (N, 0, ...) result
    kernel, dilation, stride, padding = _params(rng, dims)
    pad = [0] * dims if isinstance(padding, str) else padding
    size = []
    for k, d, p in zip(kernel, dilation, pad):
        span = d * (k - 1) + 1
        size.append(max(rng.randint(1, 13), span - 2 * p))
    # huge padding and stride (2D only: torch's own 1D backward fails on these
    # with "Expected a tensor of dimension 4 and tensor.size[3] == 1")
    if rng.random() < 0.05 and not isinstance(padding, str) and dims == 2:
        i = rng.randrange(dims)
        padding = list(padding)
        padding[i] = rng.choice([10 ** 6, 10 ** 8])  # torch's 2D path breaks past 2^31
        stride = list(stride) if isinstance(stride, list) else [stride] * dims
        stride[i] = padding[i] + rng.randint(0, 3)
    N = rng.choice([None, 0, 1, 1, 2, 3])
    OC = rng.randint(1, 3) * groups
    return ConvCase(dims, N, C, OC, tuple(size), tuple(kernel), stride, padding, dilation,
                    groups, bias=rng.random() < 0.7)


def _layout(rng, t, weight=False):
    """The same values in another layout: channels_last, a strided slice of a
    bigger tensor, an expanded view, or a transposed copy. Weights get no
    expanded or transposed layouts: torch's float64 reference path rejects
    some ("slow_conv2d: grad_weight must be contiguous")."""
    choice = rng.randrange(5)
    if weight and choice in (3, 4):
        choice = 0
    if choice == 1 and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if choice == 2:
        big = torch.zeros(*[2 * n for n in t.shape], dtype=t.dtype)
        view = big[tuple(slice(None, None, 2) for _ in t.shape)]
        view.copy_(t)
        return view
    if choice == 3 and t.dim() >= 1 and t.shape[0] > 0:
        first = t[:1]
        return first.expand(t.shape)  # every image/channel the same values
    if choice == 4 and t.dim() >= 2:
        return t.transpose(0, -1).contiguous().transpose(0, -1)
    return t


def run_case(seed, make_case=random_case, fns=None, torch_fns=None):
    """make_case(rng)'s case in a random dtype and layouts, against torch
    (fns / torch_fns: {dims: function}, default conv{dims}d; test_transpose
    passes the transposed ones)."""
    rng = random.Random(seed)
    case = make_case(rng)
    dtype = rng.choice(FLOAT_DTYPES)
    x, w, b = case.make(dtype, seed=seed)
    x, w = _layout(rng, x), _layout(rng, w, weight=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns for 'same' with an even kernel
        assert_close_to_torch(case.dims, x, w, b, fn=fns and fns[case.dims],
                              torch_fn=torch_fns and torch_fns[case.dims], **case.conv_kwargs)


@pytest.mark.parametrize("seed", range(CI_COUNT))
def test_fuzz_matches_torch(seed):
    run_case(10_000 + seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    args = parser.parse_args()
    start, failures = time.time(), []
    for seed in range(args.seed, args.seed + args.count):
        try:
            run_case(seed)
        except Exception:  # noqa: BLE001 - report every failing case
            rng = random.Random(seed)
            failures.append(seed)
            print(f"FAIL seed={seed}: {random_case(rng)}\n{traceback.format_exc()}", flush=True)
    print(f"fuzz: {args.count - len(failures)}/{args.count} cases match torch "
          f"(seeds {args.seed}..{args.seed + args.count - 1}, {time.time() - start:.0f} s); "
          f"failing seeds: {failures}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
