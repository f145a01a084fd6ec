"""convext: hand-written CPU and CUDA convolution kernels for PyTorch.

    import convext
    y = convext.conv2d(x, w, b, stride=1, padding="same")   # like F.conv2d
    layer = convext.Conv2d(64, 64, 3, padding=1)            # like nn.Conv2d
    up = convext.ConvTranspose2d(64, 32, 2, stride=2)       # like nn.ConvTranspose2d
    model = convext.convert(model)                          # swap a model's convs
    print(convext.explain(model, (1, 3, 224, 224)))         # shapes, costs, fields

The ops are real custom ops (torch.ops.convext.*), so autograd (double
backward included), forward-mode AD, torch.func.vmap, torch.compile,
torch.export, ONNX export, TorchScript, FX and opcheck work.
"""
from . import _ops  # noqa: F401  (loads the kernels, registers fake + autograd)
from ._extension import cpu_isa, with_cuda
from .convert import Unconverted, convert, unconverted
from .explain import Explanation, explain
from .functional import conv1d, conv2d
from .modules import (Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d, LazyConv1d, LazyConv2d,
                      LazyConvTranspose1d, LazyConvTranspose2d)
from .transpose import conv_transpose1d, conv_transpose2d

__version__ = "0.1.0"
__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "Conv1d", "Conv2d",
           "ConvTranspose1d", "ConvTranspose2d", "LazyConv1d", "LazyConv2d", "LazyConvTranspose1d",
           "LazyConvTranspose2d", "convert", "unconverted", "Unconverted", "explain", "Explanation",
           "with_cuda", "cpu_isa"]
