"""The call signature: keyword arguments, integer-like values and the
exception type for badly typed arguments, as torch.nn.functional has them."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convext
from conftest import ConvCase


def test_accepts_keyword_arguments_like_torch(device):
    x, w, b = ConvCase(2, 1, 2, 3, (6, 6), (3, 3)).make(torch.float32, device)
    kwargs = dict(input=x, weight=w, bias=b, stride=(1, 2), padding=(1, 0), dilation=1, groups=1)
    torch.testing.assert_close(convext.conv2d(**kwargs), F.conv2d(**kwargs))
    torch.testing.assert_close(convext.conv2d(x, w), F.conv2d(x, w))


@pytest.mark.parametrize("kwargs", [
    dict(stride=torch.Size([2, 1])),
    dict(stride=[torch.tensor(2), torch.tensor(1)]),
    dict(stride=(2, 1), padding=[1], dilation=(1, 2)),
    dict(groups=np.int64(2)),
    dict(groups=torch.tensor(2)),
    dict(stride=np.int64(2)),
    dict(padding=(np.int32(1), 0)),
    dict(dilation=[np.int64(2)]),
], ids=["torch.Size", "tensor_elements", "mixed_lists", "groups_numpy", "groups_tensor",
        "stride_numpy", "padding_numpy_element", "dilation_numpy_element"])
def test_accepts_integer_like_arguments_like_torch(kwargs):
    x, w, b = ConvCase(2, 2, 4, 4, (8, 7), (3, 3), groups=2).make(torch.float32)
    kwargs = dict(dict(groups=2), **kwargs)
    torch.testing.assert_close(convext.conv2d(x, w, b, **kwargs), F.conv2d(x, w, b, **kwargs))


@pytest.mark.parametrize("kwargs", [dict(stride=1.5), dict(stride=None), dict(padding=None),
                                    dict(dilation=2.0), dict(groups=None), dict(groups=2.0),
                                    dict(padding=("same",)), dict(stride=True)],
                         ids=lambda k: "-".join(f"{a}={b!r}" for a, b in k.items()))
def test_bad_argument_types_raise_type_error_like_torch(kwargs):
    """torch's argument parser words these its own way; the type must match."""
    x, w, _ = ConvCase(2, 1, 2, 2, (6, 6), (3, 3)).make(torch.float32)
    with pytest.raises(TypeError):
        F.conv2d(x, w, **kwargs)
    with pytest.raises(TypeError):
        convext.conv2d(x, w, **kwargs)


def test_non_tensor_input_raises_type_error_like_torch():
    w = torch.randn(2, 1, 3)
    for fn in (F.conv1d, convext.conv1d):
        with pytest.raises(TypeError):
            fn([[1.0, 2.0, 3.0]], w)
