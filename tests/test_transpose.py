"""convext.conv_transpose1d/2d and ConvTranspose1d/2d against torch's: values
and gradients for every dtype, gradcheck/gradgradcheck and double backward in
float64, errors (type and text, live from torch), modules (init, repr,
state_dict, output_size=, padding_mode), layouts, opcheck, compile, export,
and that only convext's grad_input op runs."""
import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.library import opcheck

import convext
from conftest import (FLOAT_DTYPES, ConvCase, assert_close_to_torch, assert_same_error, case_id,
                      dtype_id)
from test_gradients import assert_double_backward_matches
from test_no_aten_conv import offending_ops
from test_fuzz import run_case

ops = torch.ops.convext
TORCH_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d}
CONVEXT_T = {1: convext.conv_transpose1d, 2: convext.conv_transpose2d}


@dataclass(frozen=True)
class TCase(ConvCase):
    """A transposed conv: input (N, C, *size), weight (C, OC/groups, *kernel),
    output OC channels. N=None: unbatched."""
    output_padding: object = 0

    @property
    def conv_kwargs(self):
        return dict(super().conv_kwargs, output_padding=self.output_padding)

    def make(self, dtype=torch.float64, seed=0):
        x, _, b = super().make(dtype, seed=seed)
        gen = torch.Generator().manual_seed(seed + 1)
        w = torch.randn(self.C, self.OC // self.groups, *self.kernel, generator=gen,
                        dtype=torch.float64)
        return x, w.to(dtype), b


def tcase_id(c):
    return case_id(c) + (f"-op{c.output_padding}".replace(" ", "") if c.output_padding else "")


CASES = [
    TCase(2, 2, 3, 4, (5, 4), (3, 2)),                                        # non-square
    TCase(2, 2, 4, 3, (4, 5), (2, 2), stride=2),                              # U-Net up
    TCase(2, 2, 3, 5, (4, 3), (3, 3), stride=2, padding=1, output_padding=1),
    TCase(2, 2, 3, 4, (4, 5), (3, 4), stride=(3, 2), padding=(1, 2), output_padding=(2, 1)),
    TCase(2, 2, 3, 4, (4, 5), (2, 2), stride=3),                              # stride > kernel
    TCase(2, 2, 3, 4, (5, 4), (3, 2), dilation=(2, 3), padding=(2, 1)),
    # output_padding >= stride, allowed because it is < dilation
    TCase(2, 2, 3, 4, (5, 4), (3, 3), dilation=3, output_padding=(2, 1)),
    TCase(2, 1, 2, 3, (4, 4), (3, 2), stride=(2, 1), dilation=(1, 4), padding=1,
          output_padding=(1, 3)),
    TCase(2, 2, 6, 4, (5, 4), (3, 3), stride=2, padding=1, groups=2),
    TCase(2, 2, 4, 4, (5, 6), (3, 3), stride=2, padding=1, output_padding=1, groups=4),  # dw
    TCase(2, 2, 4, 8, (5, 6), (4, 4), stride=2, padding=1, groups=4, bias=False),
    TCase(2, 2, 6, 3, (4, 5), (3, 3), stride=[2], padding=[1], output_padding=[1], groups=3),
    TCase(2, 2, 3, 4, (5, 4), (5, 4), padding=(4, 3)),                        # 1x1 output
    TCase(2, 0, 3, 4, (5, 4), (3, 3), stride=2),                              # empty batch
    TCase(2, None, 3, 4, (5, 4), (3, 3), stride=2, padding=1, output_padding=1),  # unbatched
    TCase(2, 2, 40, 36, (9, 10), (4, 4), stride=2, padding=1),                # several tiles
    TCase(1, 2, 3, 4, (9,), (3,)),
    TCase(1, 2, 4, 3, (7,), (16,), stride=8, padding=4),                      # HiFi-GAN up
    TCase(1, 2, 3, 5, (8,), (4,), stride=3, padding=2, output_padding=2, dilation=2),
    TCase(1, 2, 3, 4, (8,), (3,), dilation=4, output_padding=3),              # op >= stride
    TCase(1, 2, 6, 4, (9,), (5,), stride=2, padding=2, output_padding=1, groups=2),
    TCase(1, 0, 3, 4, (9,), (3,), stride=2),                                  # empty batch
    TCase(1, None, 3, 4, (9,), (3,), stride=2, bias=False),                   # unbatched
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", CASES, ids=tcase_id)
def test_matches_torch(case, dtype):
    """Output and the gradients of input, weight and bias, against torch's
    float64 result with a dtype-aware bound."""
    x, w, b = case.make(dtype)
    out = assert_close_to_torch(case.dims, x, w, b, fn=CONVEXT_T[case.dims],
                                torch_fn=TORCH_T[case.dims], **case.conv_kwargs)
    assert out.shape == TORCH_T[case.dims](x.double(), w.double(), None, **case.conv_kwargs).shape


def random_case(rng):
    """A valid random transposed conv: output_padding below max(stride, dilation),
    padding small enough for an output of at least 1."""
    dims, groups = rng.choice([1, 2]), rng.choice([1, 1, 2, 3])
    kernel = tuple(rng.randint(1, 5) for _ in range(dims))
    stride = tuple(rng.randint(1, 4) for _ in range(dims))
    dilation = tuple(rng.randint(1, 3) for _ in range(dims))
    size = tuple(rng.randint(1, 8) for _ in range(dims))
    out_pad = tuple(rng.randrange(max(s, d)) for s, d in zip(stride, dilation))
    padding = tuple(rng.randint(0, ((i - 1) * s + d * (k - 1) + o) // 2)
                    for i, s, d, k, o in zip(size, stride, dilation, kernel, out_pad))
    return TCase(dims, rng.choice([None, 0, 1, 2]), rng.randint(1, 4) * groups,
                 rng.randint(1, 4) * groups, size, kernel, stride, padding, dilation, groups,
                 bias=rng.random() < 0.7, output_padding=out_pad)


@pytest.mark.parametrize("seed", range(40))
def test_random_config_matches_torch(seed):
    run_case(seed, random_case, CONVEXT_T, TORCH_T)


GRADCHECK_CASES = [
    TCase(2, 1, 2, 3, (3, 4), (3, 2), stride=2, padding=1, output_padding=1),
    TCase(2, 1, 4, 4, (3, 3), (2, 3), stride=(1, 2), dilation=(3, 1), output_padding=(2, 1),
          groups=2),
    TCase(2, None, 2, 2, (3, 3), (3, 3), stride=2, groups=2, bias=False),
    TCase(1, 2, 2, 3, (5,), (4,), stride=3, padding=1, output_padding=2),
    TCase(1, 1, 2, 2, (4,), (3,), dilation=3, output_padding=2, groups=2),
]


def _leaves(case):
    return tuple(t.requires_grad_(True) for t in case.make() if t is not None)


def _fn(case, impl=CONVEXT_T):
    def fn(x, w, *b):
        return impl[case.dims](x, w, *b, **case.conv_kwargs)
    return fn


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=tcase_id)
def test_gradcheck_and_gradgradcheck(case):
    assert gradcheck(_fn(case), _leaves(case))
    assert gradgradcheck(_fn(case), _leaves(case))


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=tcase_id)
def test_double_backward_matches_torch(case):
    assert_double_backward_matches(CONVEXT_T[case.dims], TORCH_T[case.dims], case.make(),
                                   case.conv_kwargs)


@pytest.mark.parametrize("case", [
    TCase(2, 2, 4, 6, (5, 4), (3, 3), stride=2, padding=1, output_padding=1, groups=2),
    TCase(2, 2, 4, 6, (5, 4), (3, 3), dilation=3, output_padding=(2, 1)),  # padded input
], ids=tcase_id)
@pytest.mark.parametrize("x_cl, w_cl", [(True, False), (False, True), (True, True)])
def test_channels_last_layout_and_values(case, x_cl, w_cl):
    """The result's memory format is torch's (channels_last when the input or
    the weight is), values and gradients unchanged."""
    x, w, b = case.make(torch.float32)
    if x_cl:
        x = x.contiguous(memory_format=torch.channels_last)
    if w_cl:
        w = w.contiguous(memory_format=torch.channels_last)
    out = assert_close_to_torch(2, x, w, b, fn=convext.conv_transpose2d,
                                torch_fn=F.conv_transpose2d, **case.conv_kwargs)
    ref = F.conv_transpose2d(x, w, b, **case.conv_kwargs)
    assert out.stride() == ref.stride()


def test_non_contiguous_input():
    x = torch.randn(2, 5, 6, 3, dtype=torch.float64).permute(0, 3, 2, 1)[:, :, ::2]
    w = torch.randn(3, 4, 3, 2, dtype=torch.float64)
    assert not x.is_contiguous()
    torch.testing.assert_close(convext.conv_transpose2d(x, w, stride=2, output_padding=1),
                               F.conv_transpose2d(x, w, stride=2, output_padding=1))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dims", [1, 2])
def test_autocast(dims, bias):
    """Under torch.autocast("cpu") the floating inputs are cast to the autocast
    dtype, as for F.conv_transpose*: the result is bit for bit convext's on
    tensors cast by hand, and gradients reach the float32 leaves in float32."""
    case = TCase(dims, 2, 4, 6, (5,) * dims, (3,) * dims, stride=2, padding=1,
                 output_padding=1, groups=2, bias=bias)
    x, w, b = case.make(torch.float32)
    leaves = [t.requires_grad_(True) for t in (w, b) if t is not None]
    dtype = torch.get_autocast_dtype("cpu")
    with torch.autocast("cpu"):
        out = CONVEXT_T[dims](x, w, b, **case.conv_kwargs)
        theirs = TORCH_T[dims](x, w, b, **case.conv_kwargs)
        mixed = CONVEXT_T[dims](x.to(dtype), w, b, **case.conv_kwargs)  # no dtype mismatch
    assert out.dtype == theirs.dtype == dtype and torch.equal(mixed, out)
    by_hand = CONVEXT_T[dims](x.to(dtype), w.to(dtype), None if b is None else b.to(dtype),
                              **case.conv_kwargs)
    assert torch.equal(out, by_hand)
    grads = torch.autograd.grad(out.float().square().sum(), leaves)
    assert all(g.dtype == torch.float32 for g in grads)


def test_grad_input_op_accepts_output_padding_sizes():
    """The op behind it: an input_size the conv formula floors back to
    grad_output's size (as output_padding < stride gives) is accepted and
    right, and one it does not map back is refused."""
    x, w = torch.randn(2, 4, 5, 6, dtype=torch.float64), torch.randn(4, 3, 3, 3,
                                                                         dtype=torch.float64)
    ref = F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
    out = ops.conv2d_grad_input(x, w, list(ref.shape), [2, 2], [1, 1], [1, 1], 1)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="expected grad_output of size"):
        ops.conv2d_grad_input(x, w, [2, 3, 11, 13], [2, 2], [1, 1], [1, 1], 1)


X2, W2 = torch.randn(2, 4, 5, 6, dtype=torch.float64), torch.randn(4, 3, 3, 3,
                                                                   dtype=torch.float64)
X1, W1 = torch.randn(2, 4, 5, dtype=torch.float64), torch.randn(4, 3, 3, dtype=torch.float64)


def t(*shape):
    return torch.randn(*shape, dtype=torch.float64)


# name -> (dims, args, kwargs), float64: torch's portable path, whose checks
# have torch's own wording (float32 CPU reports some of them from oneDNN).
BAD_CALLS = {
    "input_2d": (2, (t(5, 6), W2), {}),
    "input_5d": (2, (t(1, 2, 4, 5, 6), W2), {}),
    "input_1d_for_1d": (1, (t(5), W1), {}),
    "weight_3d_for_2d": (2, (X2, W1), {}),
    "weight_5d_for_2d": (2, (X2, t(4, 3, 3, 3, 3)), dict(stride=(1, 1, 1), padding=(0, 0, 0),
                                                          output_padding=(0, 0, 0),
                                                          dilation=(1, 1, 1))),
    "weight_4d_for_1d": (1, (X1, W2), {}),
    "weight_2d": (1, (X1, t(4, 3)), {}),
    "channels": (2, (t(2, 5, 5, 6), W2), {}),
    "channels_unbatched": (2, (t(5, 5, 6), W2), {}),
    "channels_1d": (1, (t(2, 3, 5), W1), {}),
    "groups_not_dividing": (2, (X2, W2), dict(groups=3)),
    "groups_more_than_weight": (2, (X2, t(4, 1, 3, 3)), dict(groups=8)),
    "groups_zero": (2, (X2, W2), dict(groups=0)),
    "groups_negative_1d": (1, (X1, W1), dict(groups=-1)),
    "zero_in_channels": (2, (t(2, 0, 5, 6), t(0, 1, 3, 3)), {}),
    "stride_zero": (2, (X2, W2), dict(stride=0)),
    "stride_negative_1d": (1, (X1, W1), dict(stride=-2)),
    "padding_negative": (2, (X2, W2), dict(padding=(0, -1))),
    "output_padding_negative": (2, (X2, W2), dict(output_padding=-1)),
    "output_padding_negative_and_stride_zero": (2, (X2, W2), dict(output_padding=-1, stride=0)),
    "padding_and_stride_bad": (2, (X2, W2), dict(stride=0, padding=-1)),
    "dilation_negative": (2, (X2, W2), dict(dilation=-1)),
    "dilation_zero": (2, (X2, W2), dict(dilation=0)),
    "dilation_zero_one_dim": (2, (X2, W2), dict(dilation=(1, 0))),
    "dilation_zero_1d": (1, (X1, W1), dict(dilation=0)),
    "output_padding_eq_stride": (2, (X2, W2), dict(output_padding=1)),
    "output_padding_eq_stride_one_dim": (2, (X2, W2), dict(output_padding=(0, 2),
                                                           stride=(1, 2))),
    "output_padding_eq_stride_and_dilation": (2, (X2, W2), dict(output_padding=2, stride=2,
                                                                dilation=2)),
    "output_padding_1d": (1, (X1, W1), dict(output_padding=2, stride=2)),
    "output_size_too_small": (2, (X2, W2), dict(padding=4)),
    "output_size_zero": (2, (X2, W2), dict(padding=(1, 4))),
    "output_size_too_small_1d": (1, (X1, W1), dict(padding=4)),
    "empty_spatial": (2, (t(2, 4, 0, 6), W2), {}),
    "empty_spatial_1d": (1, (t(2, 4, 0), W1), {}),
    "zero_kernel": (2, (X2, t(4, 3, 0, 3)), {}),
    "zero_kernel_1d": (1, (X1, t(4, 3, 0)), {}),
    "zero_out_channels": (2, (X2, t(4, 0, 3, 3)), {}),
    "zero_out_channels_1d": (1, (X1, t(4, 0, 3)), {}),
    "stride_len3": (2, (X2, W2), dict(stride=(1, 1, 1))),
    "padding_len3": (2, (X2, W2), dict(padding=(1, 1, 1))),
    "output_padding_len3": (2, (X2, W2), dict(output_padding=(1, 1, 1))),
    "dilation_len2_1d": (1, (X1, W1), dict(dilation=(1, 1))),
    "output_padding_len2_1d": (1, (X1, W1), dict(output_padding=(1, 1))),
    "padding_string": (2, (X2, W2), dict(padding="same")),
    "bias_wrong_length": (2, (X2, W2, t(4)), {}),
    "bias_2d": (2, (X2, W2, t(3, 1)), {}),
    "bias_grouped": (2, (X2, t(4, 3, 3, 3), t(3)), dict(groups=2)),
    "bias_1d": (1, (X1, W1, t(4)), {}),
    # argument types, as torch's argument parser reports them (convext/_args.py)
    "stride_float_positional": (2, (X2, W2, None, 1.5), {}),
    "stride_element_float": (2, (X2, W2), dict(stride=[1, 1.5])),
    "stride_bool": (2, (X2, W2), dict(stride=True)),
    "groups_float": (2, (X2, W2), dict(groups=1.5)),
    "groups_bool_1d": (1, (X1, W1), dict(groups=True)),
    "padding_string_positional_1d": (1, (X1, W1, None, 1, "valid"), {}),
    "bias_string": (2, (X2, W2), dict(bias="b")),
    "input_list": (2, ([1.0], W2), {}),
    "weight_missing": (2, (X2,), {}),
    "too_many_arguments": (2, (X2, W2, None, 1, 0, 0, 1, 1, 5), {}),
    "input_twice": (2, (X2, W2), dict(input=X2)),
    "unknown_keyword": (1, (X1, W1), dict(padding_mode="zeros")),
    "stride_past_int64": (2, (X2, W2), dict(stride=2**64)),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_same_error_as_torch(name):
    dims, args, kwargs = BAD_CALLS[name]
    assert_same_error(lambda: TORCH_T[dims](*args, **kwargs),
                      lambda: CONVEXT_T[dims](*args, **kwargs))


@pytest.mark.parametrize("dims", [1, 2])
def test_dtype_mismatch_and_unsupported_dtype(dims):
    x, w = torch.randn(2, 4, *(5,) * dims), torch.randn(4, 3, *(3,) * dims)
    with pytest.raises(RuntimeError):
        TORCH_T[dims](x, w.double())
    with pytest.raises(RuntimeError) as info:
        CONVEXT_T[dims](x, w.double())
    assert str(info.value) == ("Input type (torch.FloatTensor) and weight type "
                               "(torch.DoubleTensor) should be the same")
    with pytest.raises(RuntimeError) as info:
        CONVEXT_T[dims](x, w, torch.randn(3).half())
    assert str(info.value) == ("Input type (torch.FloatTensor) and bias type "
                               "(torch.HalfTensor) should be the same")
    TORCH_T[dims](x.long(), w.long())  # torch computes integers on the CPU; convext refuses
    with pytest.raises(NotImplementedError) as info:
        CONVEXT_T[dims](x.long(), w.long())
    assert str(info.value).startswith(f"\"conv_transpose{dims}d\" not implemented for 'Long'")


def test_no_aten_convolution_runs():
    def workload():
        x, w, b = (t.requires_grad_(True) for t in (torch.randn(2, 4, 5, 6),
                                                     torch.randn(4, 3, 3, 3), torch.randn(6)))
        out = convext.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2)
        grads = torch.autograd.grad(out.square().sum(), [x, w, b], create_graph=True)
        sum(g.square().sum() for g in grads).backward()
        x1, w1 = (t.requires_grad_(True) for t in (torch.randn(2, 4, 9), torch.randn(4, 2, 3)))
        convext.conv_transpose1d(x1, w1, dilation=3, output_padding=2).sum().backward()
        convext.ConvTranspose2d(3, 2, 2, stride=2)(torch.randn(1, 3, 4, 4)).sum().backward()
    assert offending_ops(workload) == []


# ---- modules ---------------------------------------------------------------

MODULE_CONFIGS = [
    (2, dict(in_channels=4, out_channels=6, kernel_size=3)),
    (2, dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0),
             output_padding=(1, 0), groups=2, bias=False, dilation=(1, 2))),
    (2, dict(in_channels=4, out_channels=4, kernel_size=4, stride=2, padding=1, groups=4)),
    (1, dict(in_channels=3, out_channels=5, kernel_size=16, stride=8, padding=4)),
    (1, dict(in_channels=4, out_channels=2, kernel_size=3, dilation=3, output_padding=2,
             groups=2)),
]


def config_id(config):
    dims, kwargs = config
    return f"{dims}d-" + "-".join(f"{k}={v}" for k, v in kwargs.items()).replace(" ", "")


def build_pair(dims, kwargs, seed=0):
    torch.manual_seed(seed)
    theirs = getattr(nn, f"ConvTranspose{dims}d")(**kwargs)
    after_theirs = torch.rand(4)
    torch.manual_seed(seed)
    ours = getattr(convext, f"ConvTranspose{dims}d")(**kwargs)
    assert torch.equal(torch.rand(4), after_theirs), "construction consumed the RNG differently"
    return theirs, ours


@pytest.mark.parametrize("config", MODULE_CONFIGS, ids=config_id)
def test_module_construction_and_state_dict(config):
    dims, kwargs = config
    theirs, ours = build_pair(dims, kwargs)
    assert isinstance(ours, getattr(nn, f"ConvTranspose{dims}d"))
    assert repr(ours) == repr(theirs)
    for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                 "groups", "padding_mode", "transposed", "output_padding"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)
    other, _ = build_pair(dims, kwargs, seed=3)
    other.load_state_dict(ours.state_dict())  # nn module loads convext's state_dict


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("config", MODULE_CONFIGS, ids=config_id)
def test_module_values_and_grads(config, batched):
    dims, kwargs = config
    theirs, ours = build_pair(dims, dict(kwargs, dtype=torch.float64))
    x = torch.randn(*((2,) if batched else ()), kwargs["in_channels"], *(5,) * dims,
                    dtype=torch.float64)
    results = []
    for module in (ours, theirs):
        xi = x.clone().requires_grad_(True)
        out = module(xi)
        results.append((out, *torch.autograd.grad(out.square().sum(),
                                                  [xi, *module.parameters()])))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dims", [1, 2])
def test_module_output_size(dims):
    theirs, ours = build_pair(dims, dict(in_channels=3, out_channels=2, kernel_size=3, stride=3,
                                         padding=1, dtype=torch.float64))
    x = torch.randn(2, 3, *(4,) * dims, dtype=torch.float64)
    for size in ([11] * dims, [12] * dims, [2, 2] + [12] * dims):
        out = ours(x, output_size=size)
        assert out.shape[2:] == torch.Size(size[-dims:])
        torch.testing.assert_close(out, theirs(x, output_size=size), rtol=1e-10, atol=1e-10)
    for bad in ([13] * dims, [9] * dims, [1] * (dims + 3)):
        assert_same_error(lambda: theirs(x, output_size=bad), lambda: ours(x, output_size=bad))
    unbatched = x[0]
    torch.testing.assert_close(ours(unbatched, output_size=[1] + [12] * dims),
                               theirs(unbatched, output_size=[1] + [12] * dims))


@pytest.mark.parametrize("dims", [1, 2])
def test_module_padding_mode_checks(dims):
    nn_cls, our_cls = getattr(nn, f"ConvTranspose{dims}d"), getattr(convext,
                                                                      f"ConvTranspose{dims}d")
    for mode in ("reflect", "circular", "mirror"):
        assert_same_error(lambda: nn_cls(2, 3, 3, padding_mode=mode),
                          lambda: our_cls(2, 3, 3, padding_mode=mode))
    theirs, ours = build_pair(dims, dict(in_channels=2, out_channels=3, kernel_size=3))
    theirs.padding_mode = ours.padding_mode = "reflect"  # set after construction
    x = torch.randn(1, 2, *(4,) * dims)
    assert_same_error(lambda: theirs(x), lambda: ours(x))


def test_module_forward_error_is_torchs():
    theirs, ours = build_pair(2, dict(in_channels=4, out_channels=6, kernel_size=3,
                                      dtype=torch.float64))
    x = torch.randn(2, 5, 6, 6, dtype=torch.float64)
    assert_same_error(lambda: theirs(x), lambda: ours(x))


# ---- opcheck, compile, export ----------------------------------------------

def _tg(*shape):
    return torch.randn(*shape).requires_grad_(True)


# The grad_input op as conv_transpose calls it: input_size beyond the conv
# formula's minimum (output_padding), channels_last, groups.
OPCHECK_CASES = {
    "2d_output_padding": lambda: (ops.conv2d_grad_input, (
        _tg(2, 4, 4, 5), _tg(4, 3, 3, 3), [2, 6, 8, 10], [2, 2], [1, 1], [1, 1], 2)),
    "2d_cl": lambda: (ops.conv2d_grad_input, (
        _tg(2, 4, 4, 5).contiguous(memory_format=torch.channels_last), _tg(4, 3, 2, 2),
        [2, 3, 8, 10], [2, 2], [0, 0], [1, 1], 1)),
    "1d_output_padding": lambda: (ops.conv1d_grad_input, (
        _tg(2, 4, 6), _tg(4, 3, 4), [2, 3, 16], [3], [2], [1], 1)),
}


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("name", OPCHECK_CASES)
def test_opcheck(name):
    op, args = OPCHECK_CASES[name]()
    opcheck(op, args)


class Decoder(nn.Module):
    """A U-Net up-block and a HiFi-GAN-style 1D upsampler."""

    def __init__(self):
        super().__init__()
        self.up = convext.ConvTranspose2d(8, 4, 2, stride=2)
        self.conv = convext.Conv2d(8, 4, 3, padding=1)
        self.up1d = convext.ConvTranspose1d(4, 2, 8, stride=4, padding=2)

    def forward(self, x, skip):
        y = self.conv(torch.cat([self.up(x), skip], 1)).relu()
        return self.up1d(y.flatten(2))


def _decoder_inputs():
    torch.manual_seed(0)
    return Decoder(), torch.randn(2, 8, 4, 5), torch.randn(2, 4, 8, 10)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    model, x, skip = _decoder_inputs()
    x.requires_grad_(True)
    compiled = torch.compile(model, fullgraph=True)  # inductor: a graph break raises
    eager, out = model(x, skip), compiled(x, skip)
    torch.testing.assert_close(out, eager)
    grads = [torch.autograd.grad(o.square().sum(), [x, *model.parameters()]) for o in (out, eager)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_export_uses_grad_input_op():
    model, x, skip = _decoder_inputs()
    exported = torch.export.export(model.eval(), (x, skip))
    targets = {str(n.target) for n in exported.graph_module.graph.nodes
               if n.op == "call_function"}
    assert {"convext.conv2d_grad_input.default", "convext.conv1d_grad_input.default"} <= targets
    assert not any("convolution" in name or "aten.conv" in name for name in targets)
    torch.testing.assert_close(exported.module()(x, skip), model(x, skip))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_export_dynamic_batch():
    model, x, skip = _decoder_inputs()
    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(model.eval(), (x, skip), dynamic_shapes=({0: batch},
                                                                              {0: batch}))
    x, skip = torch.randn(5, 8, 4, 5), torch.randn(5, 4, 8, 10)
    torch.testing.assert_close(exported.module()(x, skip), model(x, skip))


def test_compile_dynamic_shapes_functional():
    """Symbolic batch and spatial sizes through the checks and the fake kernel."""
    torch._dynamo.reset()

    def fn(x, w, b):
        return convext.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)

    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    w, b = torch.randn(3, 4, 3, 3), torch.randn(4)
    for shape in [(2, 3, 5, 6), (3, 3, 7, 4), (1, 3, 9, 9)]:
        x = torch.randn(shape)
        torch.testing.assert_close(compiled(x, w, b), F.conv_transpose2d(
            x, w, b, stride=2, padding=1, output_padding=1))


def test_suite_has_transposed_shapes():
    """The benchmark suite times transposed convs (U-Net, HiFi-GAN)."""
    from convext.bench import suites
    names = [s.name for s in suites.select("transposed")]
    assert any("unet" in n for n in names) and any("hifigan" in n for n in names)
    for shape in suites.select("transposed"):
        assert shape.transposed and all(o > 0 for o in shape.out_size())
        assert math.prod(shape.out_size()) > math.prod(shape.size)
