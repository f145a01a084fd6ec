"""convext.Conv1d / Conv2d / ConvTranspose1d / ConvTranspose2d: subclasses of
the nn modules of the same names (and their Lazy variants, which become
them on the first call, as nn's do), so construction, initialisation (and its RNG
use), attributes, repr and state_dict are torch's own; only the convolution
itself runs in convext."""
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional, transpose

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "LazyConv1d", "LazyConv2d",
           "LazyConvTranspose1d", "LazyConvTranspose2d"]


class _ConvextMixin:
    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        # Same structure as nn.ConvNd._conv_forward: non-zero padding modes pad
        # explicitly, then the conv runs unpadded. The kernel size goes along
        # as plain ints, which 'same' padding needs under torch.jit.trace.
        dims = len(self.kernel_size)
        zeros = self.padding_mode == "zeros"
        if not zeros:
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        kernel_size = [k for k in self.kernel_size]
        if torch.jit.is_scripting():
            # All TorchScript compiles (torch.jit.script of the module): the
            # attributes are constants, already checked by nn.ConvNd.
            padding: Union[str, List[int]] = [0] * dims
            if zeros:
                padding = self.padding if isinstance(self.padding, str) \
                    else [p for p in self.padding]
            return functional._convolve(input, weight, bias, [s for s in self.stride], padding,
                                        [d for d in self.dilation], self.groups, dims,
                                        kernel_size)
        else:
            # Parsed as convext.conv*d parses them (so FX records that call).
            return functional._conv(input, weight, bias, self.stride,
                                    self.padding if zeros else 0, self.dilation, self.groups,
                                    dims, kernel_size)


class Conv1d(_ConvextMixin, nn.Conv1d):
    """Drop-in for torch.nn.Conv1d."""


class Conv2d(_ConvextMixin, nn.Conv2d):
    """Drop-in for torch.nn.Conv2d."""


class _ConvextTransposeMixin:
    """forward of nn.ConvTranspose{1,2}d (padding-mode check, output_size= via
    nn's own _output_padding) with convext's transposed conv."""

    def forward(self, input: Tensor, output_size: Optional[List[int]] = None) -> Tensor:
        dims = len(self.kernel_size)
        if self.padding_mode != "zeros":
            raise ValueError(f"Only `zeros` padding mode is supported for ConvTranspose{dims}d")
        output_padding = self._output_padding(input, output_size, self.stride, self.padding,
                                              self.kernel_size, dims, self.dilation)
        if torch.jit.is_scripting():
            # As in _ConvextMixin: constant attributes, already checked by nn.
            return transpose._transpose(input, self.weight, self.bias,
                                        [s for s in self.stride], [p for p in self.padding],
                                        output_padding, self.groups,
                                        [d for d in self.dilation], dims)
        return transpose._conv_transpose(input, self.weight, self.bias, self.stride,
                                         self.padding, output_padding, self.groups,
                                         self.dilation, dims)


class ConvTranspose1d(_ConvextTransposeMixin, nn.ConvTranspose1d):
    """Drop-in for torch.nn.ConvTranspose1d."""


class ConvTranspose2d(_ConvextTransposeMixin, nn.ConvTranspose2d):
    """Drop-in for torch.nn.ConvTranspose2d."""


class LazyConv1d(_ConvextMixin, nn.LazyConv1d):
    """Drop-in for torch.nn.LazyConv1d; becomes a convext.Conv1d."""
    cls_to_become = Conv1d


class LazyConv2d(_ConvextMixin, nn.LazyConv2d):
    """Drop-in for torch.nn.LazyConv2d; becomes a convext.Conv2d."""
    cls_to_become = Conv2d


class LazyConvTranspose1d(_ConvextTransposeMixin, nn.LazyConvTranspose1d):
    """Drop-in for torch.nn.LazyConvTranspose1d; becomes a convext.ConvTranspose1d."""
    cls_to_become = ConvTranspose1d


class LazyConvTranspose2d(_ConvextTransposeMixin, nn.LazyConvTranspose2d):
    """Drop-in for torch.nn.LazyConvTranspose2d; becomes a convext.ConvTranspose2d."""
    cls_to_become = ConvTranspose2d
