"""Errors: same exception type and message as torch (computed live from torch
with the same bad arguments), plus the documented deliberate differences."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convext
from conftest import CONVEXT_FN, TORCH_FN, assert_same_error


def t(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


X2, W2, X1, W1 = t(2, 4, 8, 8), t(6, 4, 3, 3), t(2, 4, 8), t(6, 4, 3)

# name -> (dims, args, kwargs)
BAD_CALLS = {
    # wrong input ndim
    "2d_input_5d": (2, (t(1, 2, 4, 8, 8), W2), {}),
    "2d_input_2d": (2, (t(8, 8), W2), {}),
    "2d_input_1d": (2, (t(8), W2), {}),
    "2d_input_2d_same": (2, (t(8, 8), W2), dict(padding="same")),
    "1d_input_4d": (1, (X2, W1), {}),
    "1d_input_1d": (1, (t(8), W1), {}),
    "2d_weight_3d": (2, (X2, W1), {}),
    "2d_weight_3d_valid": (2, (X2, W1), dict(padding="valid")),
    "2d_weight_3d_same": (2, (X2, W1), dict(padding="same")),
    "1d_weight_4d": (1, (X1, W2), {}),
    "1d_weight_4d_same": (1, (X1, W2), dict(padding="same")),
    # channel mismatch
    "channels": (2, (t(2, 5, 8, 8), W2), {}),
    "channels_unbatched": (2, (t(5, 8, 8), W2), {}),
    "channels_same_even_kernel": (2, (t(2, 5, 8, 8), t(6, 4, 2, 2)), dict(padding="same")),
    "channels_grouped": (2, (t(2, 6, 8, 8), t(6, 2, 3, 3)), dict(groups=2)),
    "channels_1d": (1, (t(2, 3, 8), W1), {}),
    # groups
    "groups_not_dividing_out_channels": (2, (X2, t(6, 1, 3, 3)), dict(groups=4)),
    "groups_not_dividing_1d": (1, (X1, t(6, 1, 3)), dict(groups=4)),
    "groups_more_than_out_channels": (2, (t(2, 8, 8, 8), t(2, 1, 3, 3)), dict(groups=8)),
    "zero_out_channels": (2, (X2, t(0, 4, 3, 3)), {}),
    "groups_zero": (2, (X2, W2), dict(groups=0)),
    "groups_negative": (2, (X2, W2), dict(groups=-2)),
    "groups_zero_1d": (1, (X1, W1), dict(groups=0)),
    "groups_zero_same": (2, (X2, W2), dict(padding="same", groups=0)),
    # kernel larger than the padded input
    "kernel_too_big": (2, (t(2, 4, 2, 8), W2), {}),
    "kernel_too_big_dilated": (2, (t(2, 4, 4, 8), W2), dict(dilation=(2, 1), padding=(0, 1))),
    "kernel_too_big_1d": (1, (t(2, 4, 5), W1), dict(dilation=3)),
    "kernel_too_big_unbatched": (2, (t(4, 2, 8), W2), {}),
    "kernel_too_big_empty_spatial": (2, (t(2, 4, 0, 8), W2), dict(padding=1)),
    # stride, padding, dilation values
    "stride_zero": (2, (X2, W2), dict(stride=0)),
    "stride_negative_in_tuple": (2, (X2, W2), dict(stride=(1, -1))),
    "stride_zero_1d": (1, (X1, W1), dict(stride=0)),
    "padding_negative": (2, (X2, W2), dict(padding=-1)),
    "padding_negative_in_tuple": (2, (X2, W2), dict(padding=(0, -2))),
    "padding_negative_1d": (1, (X1, W1), dict(padding=[-1])),
    # float64: torch's slow path, whose zero-dilation message convext gives
    # (its oneDNN path says "non-positive dilation is not supported")
    "dilation_zero": (2, (X2.double(), W2.double()), dict(dilation=0)),
    "dilation_zero_1d": (1, (X1.double(), W1.double()), dict(dilation=[0])),
    "dilation_negative": (2, (X2, W2), dict(dilation=-1)),
    "dilation_negative_in_tuple": (2, (X2, W2), dict(dilation=(1, -1), padding="valid")),
    "dilation_negative_1d": (1, (X1, W1), dict(dilation=-1)),
    "dilation_negative_same": (2, (X2, W2), dict(padding="same", dilation=-1)),
    "dilation_zero_same": (2, (X2.double(), W2.double()), dict(padding="same", dilation=(1, 0))),
    "stride_zero_and_padding_negative": (2, (X2, W2), dict(stride=0, padding=-1)),
    # padding='same' with stride > 1, bad padding strings
    "same_strided": (2, (X2, W2), dict(padding="same", stride=2)),
    "same_strided_tuple": (2, (X2, W2), dict(padding="same", stride=(1, 2))),
    "same_strided_1d": (1, (X1, W1), dict(padding="same", stride=[3])),
    "padding_string_invalid": (2, (X2, W2), dict(padding="full")),
    "padding_string_case": (1, (X1, W1), dict(padding="SAME")),
    # wrong-length lists
    "stride_len3": (2, (X2, W2), dict(stride=(1, 1, 1))),
    "stride_len0": (2, (X2, W2), dict(stride=())),
    "padding_len3": (2, (X2, W2), dict(padding=[1, 1, 1])),
    "dilation_len3": (2, (X2, W2), dict(dilation=(1, 1, 1))),
    "stride_len2_1d": (1, (X1, W1), dict(stride=(1, 1))),
    "padding_len2_1d": (1, (X1, W1), dict(padding=(1, 1))),
    "stride_len3_same": (2, (X2, W2), dict(padding="same", stride=(1, 1, 1))),
    "dilation_len3_same": (2, (X2, W2), dict(padding="same", dilation=(1, 1, 1))),
    "dilation_len2_same_1d": (1, (X1, W1), dict(padding="same", dilation=(1, 1))),
    # bias shape
    "bias_wrong_length": (2, (X2, W2, t(5)), {}),
    "bias_2d": (2, (X2, W2, t(6, 1)), {}),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_same_error_as_torch(name):
    dims, args, kwargs = BAD_CALLS[name]
    assert_same_error(lambda: TORCH_FN[dims](*args, **kwargs),
                      lambda: CONVEXT_FN[dims](*args, **kwargs))


CANONICAL_MISMATCH = {
    "weight": ((X2, W2.double()), "Input type (torch.FloatTensor) and weight type "
                                  "(torch.DoubleTensor) should be the same"),
    "bias": ((X2, W2, t(6).double()), "Input type (torch.FloatTensor) and bias type "
                                      "(torch.DoubleTensor) should be the same"),
    "bias_half_input": ((X2.half(), W2.half(), t(6)), "Input type (torch.HalfTensor) and bias "
                                                      "type (torch.FloatTensor) should be the same"),
    "weight_1d": ((X1.double(), W1), "Input type (torch.DoubleTensor) and weight type "
                                     "(torch.FloatTensor) should be the same"),
}


@pytest.mark.parametrize("which", CANONICAL_MISMATCH)
def test_dtype_mismatch_has_canonical_message(which):
    args, message = CANONICAL_MISMATCH[which]
    dims = args[0].dim() - 2
    with pytest.raises(RuntimeError):
        TORCH_FN[dims](*args)
    with pytest.raises(RuntimeError) as info:
        CONVEXT_FN[dims](*args)
    assert str(info.value) == message


@pytest.mark.parametrize("dtype, name", [(torch.int64, "Long"), (torch.int32, "Int"),
                                         (torch.int8, "Char"), (torch.complex64, "ComplexFloat"),
                                         (torch.complex128, "ComplexDouble")])
@pytest.mark.parametrize("dims", [1, 2])
def test_non_floating_dtypes_not_implemented(dims, dtype, name):
    x = torch.ones(1, 2, *(5,) * dims, dtype=dtype)
    w = torch.ones(3, 2, *(3,) * dims, dtype=dtype)
    TORCH_FN[dims](x, w)  # torch computes these on the CPU; convext refuses
    with pytest.raises(NotImplementedError) as info:
        CONVEXT_FN[dims](x, w)
    assert str(info.value).startswith(f"\"conv{dims}d\" not implemented for '{name}'")


def test_non_floating_bias_is_a_type_mismatch():
    """torch accepts no integer bias with a float input either; convext's
    message is the canonical one."""
    with pytest.raises(RuntimeError):
        F.conv2d(X2, W2, t(6).long())
    with pytest.raises(RuntimeError) as info:
        convext.conv2d(X2, W2, t(6).long())
    assert str(info.value) == ("Input type (torch.FloatTensor) and bias type "
                               "(torch.LongTensor) should be the same")


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("kwargs", [
    dict(padding_mode="mirror"),
    dict(groups=3),                      # does not divide in_channels
    dict(groups=4, out_channels=6),      # does not divide out_channels
    dict(groups=0),
    dict(padding="same", stride=2),
    dict(padding="full"),
], ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
def test_module_constructor_errors_come_from_nn(dims, kwargs):
    full = dict(in_channels=4, out_channels=8, kernel_size=3)
    full.update(kwargs)
    nn_cls, our_cls = getattr(nn, f"Conv{dims}d"), getattr(convext, f"Conv{dims}d")
    assert_same_error(lambda: nn_cls(**full), lambda: our_cls(**full))
    with pytest.raises(ValueError):
        our_cls(**full)


def test_same_error_from_modules_forward():
    """A module with a channel mismatch reports torch's message too."""
    torch.manual_seed(0)
    ours, theirs = convext.Conv2d(4, 6, 3), nn.Conv2d(4, 6, 3)
    x = t(2, 5, 8, 8)
    assert_same_error(lambda: theirs(x), lambda: ours(x))
