"""convext.Conv1d / convext.Conv2d: subclasses of nn.Conv1d / nn.Conv2d, so
construction, initialisation (and its RNG use), attributes, repr and
state_dict are torch's own; only the convolution itself runs in convext."""
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional

__all__ = ["Conv1d", "Conv2d"]


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
