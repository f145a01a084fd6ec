"""Seeded random convolutions (shape, stride, padding, dilation, groups,
layout, dtype), each checked against torch like test_functional.py does: a
sweep over combinations no hand-written list covers."""
import random

import pytest
import torch

from conftest import FLOAT_DTYPES, ConvCase, assert_close_to_torch, no_warnings_about_same


def random_case(rng):
    dims = rng.choice([1, 2])
    groups = rng.choice([1, 1, 2, 3, 4])
    per_group_in = 1 if rng.random() < 0.3 else rng.randint(1, 6)
    kernel = tuple(rng.randint(1, 5) for _ in range(dims))
    dilation = tuple(rng.randint(1, 3) for _ in range(dims))
    if rng.random() < 0.2:
        stride, padding = 1, "same"
        size = tuple(rng.randint(1, 12) for _ in range(dims))
    else:
        stride = tuple(rng.randint(1, 4) for _ in range(dims))
        padding = tuple(rng.randint(0, 3) for _ in range(dims))
        # at least the dilated kernel's span, so the call is valid
        size = tuple(max(rng.randint(1, 14), d * (k - 1) + 1 - 2 * p)
                     for k, d, p in zip(kernel, dilation, padding))
    return ConvCase(dims, rng.choice([None, 0, 1, 2, 3]), per_group_in * groups,
                    rng.randint(1, 4) * groups, size, kernel, stride, padding, dilation, groups,
                    bias=rng.random() < 0.7)


def random_layout(rng, t):
    choice = rng.randrange(4)
    if choice == 1 and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if choice == 2:
        return t.transpose(0, -1).contiguous().transpose(0, -1)
    return t


@pytest.mark.parametrize("seed", range(48))
def test_random_config_matches_torch(seed):
    check_random_case(seed, random_case)


def check_random_case(seed, make_case, fns=None, torch_fns=None):
    """make_case(rng)'s case in a random dtype and layouts, against torch
    (fns / torch_fns: {dims: function}, default conv{dims}d)."""
    rng = random.Random(seed)
    case = make_case(rng)
    dtype = rng.choice(FLOAT_DTYPES)
    x, w, b = case.make(dtype, seed=seed)
    x, w = random_layout(rng, x), random_layout(rng, w)
    with no_warnings_about_same():
        assert_close_to_torch(case.dims, x, w, b, fn=fns and fns[case.dims],
                              torch_fn=torch_fns and torch_fns[case.dims], **case.conv_kwargs)
