"""convext.Conv1d / convext.Conv2d: subclasses of nn.Conv1d / nn.Conv2d, so
construction, initialisation (and its RNG use), attributes, repr and
state_dict are torch's own; only the convolution itself runs in convext."""
import torch.nn.functional as F
from torch import nn

from . import functional

__all__ = ["Conv1d", "Conv2d"]


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
