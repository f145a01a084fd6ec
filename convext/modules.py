"""convext.Conv1d / Conv2d / ConvTranspose1d / ConvTranspose2d: subclasses of
the nn modules of the same names (and their Lazy variants, which become
them on the first call, as nn's do), so construction, initialisation (and its RNG
use), attributes, repr and state_dict are torch's own; only the convolution
itself runs in convext."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from . import functional, transpose

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "LazyConv1d", "LazyConv2d",
           "LazyConvTranspose1d", "LazyConvTranspose2d"]


class _ConvextMixin:
    _convext_fn = None

    def _conv_forward(self, input, weight, bias):
        # Same structure as nn.ConvNd._conv_forward: non-zero padding modes pad
        # explicitly, then the conv runs unpadded.
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        else:
            padding = self.padding
        return type(self)._convext_fn(input, weight, bias, self.stride, padding,
                                      self.dilation, self.groups)


class Conv1d(_ConvextMixin, nn.Conv1d):
    """Drop-in for torch.nn.Conv1d."""
    _convext_fn = staticmethod(functional.conv1d)


class Conv2d(_ConvextMixin, nn.Conv2d):
    """Drop-in for torch.nn.Conv2d."""
    _convext_fn = staticmethod(functional.conv2d)


class _ConvextTransposeMixin:
    """forward of nn.ConvTranspose{1,2}d (padding-mode check, output_size= via
    nn's own _output_padding) with convext's transposed conv."""
    _convext_fn = None
    _spatial_dims = 0

    def forward(self, input: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        if self.padding_mode != "zeros":
            raise ValueError("Only `zeros` padding mode is supported for "
                             f"ConvTranspose{self._spatial_dims}d")
        output_padding = self._output_padding(input, output_size, self.stride, self.padding,
                                              self.kernel_size, self._spatial_dims,
                                              self.dilation)
        return type(self)._convext_fn(input, self.weight, self.bias, self.stride, self.padding,
                                      output_padding, self.groups, self.dilation)


class ConvTranspose1d(_ConvextTransposeMixin, nn.ConvTranspose1d):
    """Drop-in for torch.nn.ConvTranspose1d."""
    _convext_fn = staticmethod(transpose.conv_transpose1d)
    _spatial_dims = 1


class ConvTranspose2d(_ConvextTransposeMixin, nn.ConvTranspose2d):
    """Drop-in for torch.nn.ConvTranspose2d."""
    _convext_fn = staticmethod(transpose.conv_transpose2d)
    _spatial_dims = 2


class LazyConv1d(_ConvextMixin, nn.LazyConv1d):
    """Drop-in for torch.nn.LazyConv1d; becomes a convext.Conv1d."""
    _convext_fn = staticmethod(functional.conv1d)
    cls_to_become = Conv1d


class LazyConv2d(_ConvextMixin, nn.LazyConv2d):
    """Drop-in for torch.nn.LazyConv2d; becomes a convext.Conv2d."""
    _convext_fn = staticmethod(functional.conv2d)
    cls_to_become = Conv2d


class LazyConvTranspose1d(_ConvextTransposeMixin, nn.LazyConvTranspose1d):
    """Drop-in for torch.nn.LazyConvTranspose1d; becomes a convext.ConvTranspose1d."""
    _convext_fn = staticmethod(transpose.conv_transpose1d)
    _spatial_dims = 1
    cls_to_become = ConvTranspose1d


class LazyConvTranspose2d(_ConvextTransposeMixin, nn.LazyConvTranspose2d):
    """Drop-in for torch.nn.LazyConvTranspose2d; becomes a convext.ConvTranspose2d."""
    _convext_fn = staticmethod(transpose.conv_transpose2d)
    _spatial_dims = 2
    cls_to_become = ConvTranspose2d
