"""torch.library.opcheck (schema, autograd registration, fake tensor, AOT
dispatch) on every convext op, with the default test_utils."""
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.library import opcheck

ops = torch.ops.convext
pytestmark = pytest.mark.usefixtures("single_thread")


def t(*shape, cl=False, grad=True, dtype=torch.float32):
    x = torch.randn(*shape, dtype=dtype)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.requires_grad_(grad)


# name -> (op, args builder). Builders so each test gets fresh tensors.
OPCHECK_CASES = {
    "conv2d": (ops.conv2d, lambda: (t(2, 4, 6, 5), t(6, 2, 3, 2), t(6), [2, 1], [1, 0], [1, 2],
                                    2)),
    "conv2d_nobias_cl_input": (ops.conv2d, lambda: (t(2, 4, 6, 5, cl=True), t(6, 4, 3, 2), None,
                                                    [1, 1], [1, 1], [1, 1], 1)),
    "conv2d_cl_weight_depthwise": (ops.conv2d, lambda: (t(2, 4, 6, 5), t(8, 1, 3, 3, cl=True),
                                                        t(8), [1, 2], [1, 1], [2, 1], 4)),
    "conv2d_cl_weight": (ops.conv2d, lambda: (t(2, 4, 6, 5), t(6, 4, 3, 3, cl=True), None,
                                              [1, 1], [0, 0], [1, 1], 1)),
    "conv2d_bf16": (ops.conv2d, lambda: (t(1, 2, 5, 5, dtype=torch.bfloat16),
                                         t(3, 2, 3, 3, dtype=torch.bfloat16),
                                         t(3, dtype=torch.bfloat16), [1, 1], [1, 1], [1, 1], 1)),
    "conv2d_no_grad": (ops.conv2d, lambda: (t(2, 4, 6, 5, grad=False), t(6, 4, 3, 3, grad=False),
                                            None, [1, 1], [1, 1], [1, 1], 1)),
    "conv2d_empty_batch": (ops.conv2d, lambda: (t(0, 4, 6, 5), t(6, 4, 3, 3), t(6), [1, 1],
                                                [1, 1], [1, 1], 1)),
    "conv1d": (ops.conv1d, lambda: (t(2, 4, 9), t(6, 4, 3), t(6), [2], [1], [2], 1)),
    "conv1d_depthwise_transposed": (ops.conv1d, lambda: (t(2, 9, 4).transpose(1, 2),
                                                         t(8, 1, 3), None, [1], [2], [1], 4)),
    "conv2d_grad_input": (ops.conv2d_grad_input, lambda: (t(2, 6, 3, 3), t(6, 2, 3, 2),
                                                          [2, 4, 6, 5], [2, 1], [1, 0], [1, 2],
                                                          2)),
    "conv2d_grad_input_cl": (ops.conv2d_grad_input, lambda: (t(2, 6, 6, 5, cl=True),
                                                             t(6, 4, 3, 3), [2, 4, 6, 5], [1, 1],
                                                             [1, 1], [1, 1], 1)),
    "conv2d_grad_input_cl_weight": (ops.conv2d_grad_input, lambda: (
        t(2, 6, 6, 5), t(6, 4, 3, 3, cl=True), [2, 4, 6, 5], [1, 1], [1, 1], [1, 1], 1)),
    "conv1d_grad_input": (ops.conv1d_grad_input, lambda: (t(2, 6, 5), t(6, 4, 3), [2, 4, 9], [2],
                                                          [1], [1], 1)),
    "conv2d_grad_weight": (ops.conv2d_grad_weight, lambda: (t(2, 6, 3, 3), t(2, 4, 6, 5),
                                                            [6, 2, 3, 2], [2, 1], [1, 0], [1, 2],
                                                            2)),
    "conv2d_grad_weight_cl": (ops.conv2d_grad_weight, lambda: (t(2, 6, 6, 5),
                                                               t(2, 4, 6, 5, cl=True),
                                                               [6, 4, 3, 3], [1, 1], [1, 1],
                                                               [1, 1], 1)),
    "conv2d_grad_weight_cl_grad_output": (ops.conv2d_grad_weight, lambda: (
        t(2, 6, 6, 5, cl=True), t(2, 4, 6, 5), [6, 4, 3, 3], [1, 1], [1, 1], [1, 1], 1)),
    "conv2d_grad_weight_depthwise": (ops.conv2d_grad_weight, lambda: (
        t(2, 8, 6, 5), t(2, 4, 6, 5), [8, 1, 3, 3], [1, 1], [1, 1], [1, 1], 4)),
    "conv1d_grad_weight": (ops.conv1d_grad_weight, lambda: (t(2, 6, 5), t(2, 4, 9), [6, 4, 3],
                                                            [2], [1], [1], 1)),
    "conv_grad_bias_4d": (ops.conv_grad_bias, lambda: (t(2, 6, 3, 5),)),
    "conv_grad_bias_cl": (ops.conv_grad_bias, lambda: (t(2, 6, 3, 5, cl=True),)),
    "conv_grad_bias_3d": (ops.conv_grad_bias, lambda: (t(2, 6, 5),)),
    "conv_grad_bias_expanded": (ops.conv_grad_bias, lambda: (t(1, 6, 1, 1, grad=False)
                                                             .expand(2, 6, 3, 4),)),
}


@pytest.mark.parametrize("name", OPCHECK_CASES)
def test_opcheck(name):
    op, make_args = OPCHECK_CASES[name]
    opcheck(op, make_args())


def test_every_op_is_covered():
    covered = {op._qualified_op_name.split("::")[1] for op, _ in OPCHECK_CASES.values()}
    assert covered == {"conv1d", "conv2d", "conv1d_grad_input", "conv2d_grad_input",
                       "conv1d_grad_weight", "conv2d_grad_weight", "conv_grad_bias"}


@pytest.mark.parametrize("name", OPCHECK_CASES)
def test_fake_kernel_matches_real_metadata(name):
    """Shape, dtype and strides (memory format) of the fake kernel's result."""
    op, make_args = OPCHECK_CASES[name]
    args = make_args()
    real = op(*args)
    with FakeTensorMode() as mode:
        fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        fake = op(*fake_args)
    assert (fake.shape, fake.dtype, fake.stride()) == (real.shape, real.dtype, real.stride())
