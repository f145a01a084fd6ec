"""Run a model on the `meta` device (shapes only: no memory, no FLOPs) and
record every leaf layer it calls, in execution order: input and output
shapes, multiply-accumulates, and which earlier layers each tensor's
positions went through ("chain"), so receptive fields can be accumulated.

The user's model is never touched: a deep copy whose parameters and buffers
are meta tensors gets the hooks. Between layers a dispatch mode follows every
aten op the model's own forward code runs; only element-wise ops (and
shape-keeping copies/views) keep a chain, anything else (a flatten, a
residual add of two paths, ...) marks it unknown with the reason."""
import copy
import itertools
import warnings
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry

from . import diagnose, geometry

aten = torch.ops.aten
_KEEPS_POSITIONS = {aten.clone, aten.detach, aten.alias, aten._to_copy, aten.copy_,
                    aten.lift_fresh, aten.view, aten._unsafe_view, aten.reshape}
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")


@dataclass(frozen=True)
class Chain:
    """The known layers a tensor's positions went through, from the model
    input; `dims`: how many trailing axes are spatial (None before any)."""
    layers: tuple = ()
    dims: int = None


@dataclass(frozen=True)
class Unknown:
    reason: str


@dataclass
class Call:
    index: int
    name: str
    module: torch.nn.Module          # the meta copy
    input_shape: tuple
    chain_in: object
    geometry: object = None          # geometry.Geometry or None
    output_shape: tuple = None
    chain: object = None             # Chain or Unknown, after this layer
    flops: int = 0                   # from torch's flop formulas, for other layers


@dataclass
class Trace:
    calls: list
    dtype: torch.dtype
    output_shape: tuple = None
    output_chain: object = None
    failed: int = None               # index of the layer that raised, if any
    error: BaseException = None      # what torch said (CPU text when we could get it)
    problem: object = None           # diagnose.Problem: arithmetic and fixes
    where: str = ""                  # where it failed, in words
    has_1d: bool = False             # the model holds 1D layers (for a pitfall)


def _first_tensor(obj):
    return next((t for t in tree_leaves(obj) if isinstance(t, torch.Tensor)), None)


def meta_copy(model):
    """Deep copy of `model` with meta parameters and buffers and no hooks."""
    memo = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        if torch.nn.parameter.is_lazy(t):
            raise ValueError("convext.explain: the model has lazy (not yet shaped) "
                             "parameters; run it once on a real batch first")
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = (torch.nn.Parameter(meta, requires_grad=t.requires_grad)
                       if isinstance(t, torch.nn.Parameter) else meta)
    return _without_hooks(copy.deepcopy(model, memo))


def _without_hooks(model):
    for m in model.modules():
        for name in _HOOK_DICTS:
            if hasattr(m, name):
                getattr(m, name).clear()
    return model


def cpu_error(module, shape, dtype):
    """Run one (meta) layer on the CPU, with uninitialised weights and input,
    and return what torch raises (None if it runs). Used only for layers
    expected to fail, where torch raises before computing anything."""
    clone = _without_hooks(copy.deepcopy(module)).to_empty(device="cpu")
    try:
        with torch.no_grad():
            clone(torch.empty(shape, dtype=dtype))
    except Exception as exc:  # noqa: BLE001 (we report whatever torch says)
        return exc
    return None


class _Stop(Exception):
    pass


class _Follow(TorchDispatchMode):
    """Tracks, per tensor the model computes, its Chain; counts FLOPs."""

    def __init__(self, sources, calls, pending):
        super().__init__()
        self.sources, self.calls, self.pending = sources, calls, pending

    def chain_of(self, t):
        rec = self.sources.get(id(t))
        return rec[1] if rec is not None and rec[0] is t else None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if self.pending and packet in flop_registry:
            try:
                self.calls[self.pending[-1]].flops += flop_registry[packet](
                    *args, **kwargs, out_val=out)
            except Exception:  # noqa: BLE001 (a count we cannot make is left out)
                pass
        ins = [(t, self.chain_of(t)) for t in tree_leaves((args, kwargs))
               if isinstance(t, torch.Tensor)]
        ins = [(t, c) for t, c in ins if c is not None]
        if not ins:
            return out
        chains = {c for _, c in ins}
        outs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        keeps = (torch.Tag.pointwise in func.tags or packet in _KEEPS_POSITIONS)
        if len(chains) > 1:
            chain = Unknown("an operation in the model's forward combined tensors from "
                            f"different paths ({packet.__name__}, e.g. a residual add)")
        elif not keeps or any(o.shape != ins[0][0].shape for o in outs):
            chain = next(iter(chains))
            if not isinstance(chain, Unknown):
                chain = Unknown(f"the model's forward ran {packet.__name__}, which is not "
                                "element-wise, so positions no longer line up")
        else:
            chain = next(iter(chains))
        for o in outs:
            self.sources[id(o)] = (o, chain)
        return out


def _layer_chain(call, module):
    """The Chain after `call`, given its input's chain."""
    cin, geo = call.chain_in, call.geometry
    if isinstance(cin, Unknown):
        return cin
    if geo is not None:
        if cin.dims not in (None, geo.dims):
            return Unknown(f"[{call.index}] {call.name} is a {geo.dims}D layer on a tensor whose last "
                           f"{cin.dims} axis was the spatial one")
        return Chain(cin.layers + (call.index,), geo.dims)
    if isinstance(module, geometry.ELEMENTWISE):
        return cin
    return Unknown(f"[{call.index}] {call.name} is not a layer whose "
                   "geometry convext.explain knows")


def _label(name, module):
    """How a layer is called in the report: its attribute path, unless that
    says nothing (the model itself, or a plain Sequential position)."""
    kind = type(module).__name__
    return kind if not name or name.isdigit() else f"{name}: {kind}"


def _dtype(model):
    return next((p.dtype for p in itertools.chain(model.parameters(), model.buffers())
                 if p.is_floating_point()), torch.float32)


def run(model, input_shape, rules=True):
    """Trace `model` on an input of `input_shape`; returns a Trace. With
    `rules`, a layer that diagnose.check expects torch to reject stops the
    trace before the meta kernels (whose messages differ from the CPU's)."""
    meta = meta_copy(model)
    names = {m: _label(n, m) for n, m in meta.named_modules()}
    dtype = _dtype(model)
    calls, pending, sources = [], [], {}
    trace = Trace(calls, dtype)
    trace.has_1d = any(geometry.dims_of(m) == 1 for m in meta.modules())
    follow = _Follow(sources, calls, pending)

    def pre(module, args):
        x = _first_tensor(args)
        shape = tuple(x.shape) if x is not None else ()
        cin = follow.chain_of(x) if x is not None else None
        if cin is None:
            cin = Unknown(f"the input of {names[module]} does not come from the model input")
        call = Call(len(calls), names[module], module, shape, cin,
                    geometry.from_module(module))
        calls.append(call)
        pending.append(call.index)
        if rules and geometry.dims_of(module) is not None:
            problem = diagnose.check(module, call.geometry, shape)
            if problem is not None:
                trace.problem = problem
                raise _Stop(call.index)

    def post(module, args, out):
        call = calls[pending.pop()]
        y = _first_tensor(out)
        if y is None:
            return
        call.output_shape = tuple(y.shape)
        call.chain = _layer_chain(call, module)
        if call.geometry is None and y.shape != torch.Size(call.input_shape) \
                and not isinstance(call.chain, Unknown):
            call.chain = Unknown(f"[{call.index}] {call.name} changed the shape")
        sources[id(y)] = (y, call.chain)

    for m in meta.modules():
        if not list(m.children()):
            m.register_forward_pre_hook(pre)
            m.register_forward_hook(post)

    x = torch.empty(input_shape, dtype=dtype, device="meta")
    sources[id(x)] = (x, Chain())
    try:
        # torch's own warnings (e.g. even kernels with 'same') become our pitfalls
        with torch.no_grad(), follow, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = meta(x)
    except Exception as exc:  # noqa: BLE001 (explained, never re-raised)
        if not _explain_failure(trace, exc, pending):
            return run(model, input_shape, rules=False)  # torch accepted that layer
        return trace
    y = _first_tensor(out)
    if y is not None:
        trace.output_shape = tuple(y.shape)
        trace.output_chain = follow.chain_of(y) or Unknown("the model's output is not "
                                                           "computed from its input")
    return trace


def _explain_failure(trace, exc, pending):
    """Fill in what failed and why; False when a predicted error did not
    happen on the CPU (then the caller traces again without predictions)."""
    calls = trace.calls
    if isinstance(exc, _Stop) or pending:
        call = calls[exc.args[0] if isinstance(exc, _Stop) else pending[-1]]
        trace.failed = call.index
        trace.where = f"layer [{call.index}] {call.name}"
        if geometry.dims_of(call.module) is not None:
            cpu = cpu_error(call.module, call.input_shape, trace.dtype)
            if cpu is not None:
                trace.error = cpu
                if trace.problem is None:
                    trace.problem = diagnose.check(call.module, call.geometry,
                                                   call.input_shape)
                return True
        if isinstance(exc, _Stop):      # torch accepts it after all
            return False
        trace.error = exc
        trace.where += " (message as raised on the meta device)"
        return True
    trace.error = exc
    last = calls[-1] if calls else None
    trace.where = ("the model's own forward code" +
                   (f", after layer [{last.index}] {last.name}" if last else ""))
    return True
