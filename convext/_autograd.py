"""The Autograd kernel of a convext op, in place of
torch.library.register_autograd: registered the same way (a Python kernel at
the op's Autograd key, so compile and export still record convext::* ops),
but with forward-mode AD and functorch support.

Why not register_autograd (torch 2.4 to 2.13): its generated Function has an
old-style forward(ctx, ...) and no jvp. torch.func.grad refuses it ("must
override the setup_context staticmethod", pytorch#170834, so per-sample
gradients fail), and its kernel takes the Function only when an input requires
grad, so forward AD (torch.func.jvp, jacfwd, torch.autograd.forward_ad) ran
the bare kernel and dropped the tangent.

Here the op runs through a _SingleLevelFunction (backward + jvp) whenever a
transform could be watching: an input requiring grad, a forward AD level, or
any functorch transform. Like an ATen op's autograd kernel it serves only the
current functorch level: forward redispatches below Autograd with the keyset
it was called with, and functorch unwraps and carries the call to the next
level (vmap levels reach the batching rules of _vmap.py). This is the fix
upstream torch adopted for register_autograd (pytorch#184974).

The kernel is also where ONNX export finds the ops' standard form (_onnx.py).
"""
import contextlib

import torch
import torch.autograd.forward_ad as fwAD
from torch._functorch.utils import enable_single_level_autograd_function

from . import _onnx

_lib = torch.library.Library("convext", "FRAGMENT")  # noqa: TOR901 (kept alive here)


def _differentiable(args):
    if torch._C._are_functorch_transforms_active() or fwAD._current_level >= 0:
        return True
    return torch.is_grad_enabled() and torch._C._any_requires_grad(*args)


def _lower_levels_differentiable():
    """Function.apply runs forward with grad and forward grad off, which would
    also switch them off for the functorch levels below this one (a jvp
    outside a grad: Hessian-vector products). Like functorch's own
    single-level Functions, turn them back on; each level below still applies
    the modes it was created under."""
    if not torch._C._are_functorch_transforms_active():
        return contextlib.nullcontext()
    return _both_modes_on()


@contextlib.contextmanager
def _both_modes_on():
    with torch.enable_grad(), fwAD._set_fwd_grad_enabled(True):
        yield


def register(name, setup_context, backward, jvp):
    """Make `convext::<name>` differentiable in both modes and under functorch.

    setup_context(ctx, inputs, output), backward(ctx, grad) and
    jvp(ctx, *tangents) follow autograd.Function's API with a separate
    setup_context; jvp gets None for the arguments without a tangent.
    """
    op = getattr(torch.ops.convext, name).default

    # The Function's last argument is the dispatch keyset to redispatch with.
    def forward(*args):
        with torch._C._AutoDispatchBelowAutograd(), _lower_levels_differentiable():
            return op.redispatch(args[-1] & torch._C._after_autograd_keyset, *args[:-1])

    function = type(f"convext_{name}", (torch.autograd.function._SingleLevelFunction,), {
        "forward": staticmethod(forward),
        "setup_context": staticmethod(
            lambda ctx, inputs, output: setup_context(ctx, inputs[:-1], output)),
        "backward": staticmethod(lambda ctx, grad: (*backward(ctx, grad), None)),
        "jvp": staticmethod(lambda ctx, *tangents: jvp(ctx, *tangents[:-1])),
    })

    def kernel(keyset, *args):
        if _onnx.exporting(args):
            return _onnx.FORMS[name](*args)
        if _differentiable(args):
            with enable_single_level_autograd_function():
                return function.apply(*args, keyset)
        return forward(*args, keyset)

    _lib.impl(name, kernel, "Autograd", with_keyset=True)
