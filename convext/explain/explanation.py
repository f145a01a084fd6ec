"""The Explanation object: per-layer records built from a Trace, the model
totals, and the exact dependencies between output and input positions.

Dependencies follow the chain of known layers with the real borders: a
layer's padding cells hold zeros (depend on nothing) unless padding_mode
copies real cells (reflect, replicate, circular); only the first layer's
padding cells are reported, as the "padding" part of an input region."""
import math
from dataclasses import asdict, dataclass, field

from torch import nn

from . import diagnose, geometry, report
from .report import plain
from .trace import Chain, Unknown


@dataclass
class Layer:
    """One executed layer: what it does to the shape, what it costs, and
    what each of its outputs sees of the model input."""
    index: int
    name: str
    type: str
    input_shape: tuple
    output_shape: tuple
    does: str = ""                 # what the layer does, in one line
    formula: list = field(default_factory=list)      # per spatial axis
    weight: dict = None        # {"shape", "axes": [[size, meaning], ...]}
    bias: dict = None
    params: int = 0
    macs: int = 0
    macs_formula: str = ""
    # model-input cells one output sees; input cells between neighbouring
    # outputs; the first input cell output 0 reads (an int per axis, a tuple in 2D)
    receptive_field: object = None
    jump: object = None
    start: object = None
    field_note: str = ""           # why receptive_field is unknown
    warnings: list = field(default_factory=list)

    def to_dict(self):
        return plain(asdict(self))


@dataclass
class Region:
    """What inputs_of returns. Per axis: `cells`, every input position read
    (negative or >= size: padding), and `inside`, the real input positions
    the output depends on. For 2D, the properties give (h, w) pairs."""
    output: tuple
    axes: list          # [{"cells": [...], "inside": [...], "size": n}]

    def _product(self, key):
        cols = [a[key] for a in self.axes]
        if len(cols) == 1:
            return list(cols[0])
        return [(h, w) for h in cols[0] for w in cols[1]]

    @property
    def cells(self):
        return self._product("cells")

    @property
    def inside(self):
        return self._product("inside")

    @property
    def padding(self):
        """The cells read that lie outside the input (its padding)."""
        sizes = [a["size"] for a in self.axes]
        inside = (lambda c: 0 <= c < sizes[0]) if len(sizes) == 1 else \
            (lambda c: all(0 <= v < n for v, n in zip(c, sizes)))
        return [c for c in self.cells if not inside(c)]

    def to_dict(self):
        return {"output": list(self.output), "axes": self.axes}

    def __str__(self):
        parts = []
        for a, name in zip(self.axes, geometry.AXIS_NAMES[len(self.axes)]):
            cells, inside = a["cells"], a["inside"]
            pad = len([c for c in cells if not 0 <= c < a["size"]])
            rng = f"{cells[0]}..{cells[-1]}" if cells else "nothing"
            parts.append(f"{name} {rng} ({len(cells)} cells, {pad} of them padding)")
        return "reads " + "; ".join(parts)


_AXIS_MEANING = {"conv": ("out_channels: one filter per output channel",
                          "in_channels/groups: channels each filter reads"),
                 "transposed": ("in_channels: one stamp per input channel",
                                "out_channels/groups: channels each stamp writes")}


def _weights(call):
    module, geo = call.module, call.geometry
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    w = b = None
    if weight is not None and hasattr(weight, "shape"):
        shape = tuple(weight.shape)
        axes = [[n, f"axis {i}"] for i, n in enumerate(shape)]
        if geo is not None and geo.kind in _AXIS_MEANING and len(shape) == 2 + geo.dims:
            m0, m1 = _AXIS_MEANING[geo.kind]
            axes = [[shape[0], m0], [shape[1], m1]] + [
                [shape[2 + i], f"kernel {n}: taps along {n}"] for i, n in enumerate(geo.names)]
        if isinstance(module, nn.Linear):
            axes = [[shape[0], "out_features: one row of weights per output"],
                    [shape[1], "in_features: inputs each output reads"]]
        w = {"shape": shape, "axes": axes}
    if bias is not None and hasattr(bias, "shape"):
        b = {"shape": tuple(bias.shape), "axes": [[bias.shape[0] if bias.dim() else 1,
                                                  "one number added per output channel"]]}
    return w, b


def _does(call):
    geo, module = call.geometry, call.module
    if geo is None:
        return ("works on each value on its own: shape and receptive field unchanged"
                if isinstance(module, geometry.ELEMENTWISE) else "")
    k = " x ".join(str(a.kernel) for a in geo.axes)
    s = " x ".join(str(a.stride) for a in geo.axes)
    if geo.kind == "conv":
        return (f"slides {module.out_channels} filter(s) of {k} taps over the input, "
                f"{s} cell(s) per step; each output is a weighted sum of one window")
    if geo.kind == "transposed":
        return (f"the reverse direction: each input cell adds a {k} stamp to the output, "
                f"stamps {s} cell(s) apart")
    what = "largest value" if geo.kind == "maxpool" else "average"
    return f"takes the {what} of each window of {k} cells, {s} cell(s) per step; no weights"


def _macs(call):
    """(multiply-accumulates, how they were counted)."""
    geo, out, inp = call.geometry, call.output_shape, call.input_shape
    if geo is not None and geo.kind in ("conv", "transposed") and out is not None:
        dims, w = geo.dims, call.module.weight
        n = out[0] if len(out) == dims + 2 else 1
        k = math.prod(w.shape[2:])
        if geo.kind == "conv":
            sp = math.prod(out[-dims:])
            per = w.shape[1] * k
            return (n * out[-dims - 1] * sp * per,
                    f"{n} (batch) * {out[-dims - 1]} (out channels) * {sp} (positions) * "
                    f"{w.shape[1]}*{k} (in_channels/groups * kernel taps per output)")
        sp = math.prod(inp[-dims:])
        per = w.shape[1] * k
        return (n * inp[-dims - 1] * sp * per,
                f"{n} (batch) * {inp[-dims - 1]} (in channels) * {sp} (input positions) * "
                f"{w.shape[1]}*{k} (out_channels/groups * kernel taps per input)")
    if call.flops:
        return call.flops // 2, "from torch's FLOP formula for this op, / 2"
    return 0, ""


class Explanation:
    """What convext.explain(obj, input_shape) returns. See str(e), e.to_dict(),
    e.layers, e.inputs_of(index), e.outputs_of(index), e.draw(index)."""

    def __init__(self, trace, input_shape, title, model=None, error=None):
        self.title = title
        self.input_shape = tuple(input_shape)
        self._trace = trace
        self.layers = []
        self.warnings = []
        self.error = error
        self.output_shape = None
        self.params = sum(p.numel() for p in model.parameters()) if model is not None else 0
        self.macs = 0
        self.receptive_field = self.jump = None
        self.field_note = ""
        self._rev = {}
        if trace is None:
            return
        self._fields = {}
        for call in trace.calls:
            self.layers.append(self._layer(call))
        self.macs = sum(layer.macs for layer in self.layers)
        self.output_shape = trace.output_shape
        if trace.error is not None:
            self.error = self._error(trace)
        elif isinstance(trace.output_chain, Chain) and trace.output_chain.layers:
            f = self._field(trace.output_chain)
            self.receptive_field = _one(f.size for f in f)
            self.jump = _one(f.jump for f in f)
        elif isinstance(trace.output_chain, Unknown):
            self.field_note = trace.output_chain.reason
        for layer in self.layers:
            self.warnings += [f"[{layer.index}] {layer.name}: {w}" for w in layer.warnings]

    # ---- building ----------------------------------------------------------

    def _field(self, chain):
        if chain.layers not in self._fields:
            geos = [self._trace.calls[i].geometry for i in chain.layers]
            self._fields[chain.layers] = geometry.fields(geos)[-1]
        return self._fields[chain.layers]

    def _layer(self, call):
        module = call.module
        layer = Layer(call.index, call.name, type(module).__name__, call.input_shape,
                      call.output_shape)
        geo = call.geometry
        if geo is not None and len(call.input_shape) >= geo.dims:
            sizes = call.input_shape[-geo.dims:]
            layer.formula = [geometry.formula(geo, i, sizes[i]) for i in range(geo.dims)]
        layer.does = _does(call)
        layer.weight, layer.bias = _weights(call)
        layer.params = sum(p.numel() for p in module.parameters())
        layer.macs, layer.macs_formula = _macs(call)
        if isinstance(call.chain, Chain) and call.chain.layers:
            fields = self._field(call.chain)
            layer.receptive_field = _one(f.size for f in fields)
            layer.jump = _one(f.jump for f in fields)
            layer.start = _one(f.start for f in fields)
        elif isinstance(call.chain, Unknown):
            layer.field_note = call.chain.reason
        if call.output_shape is not None:
            layer.warnings = diagnose.pitfalls(call, self._trace.has_1d)
        return layer

    def _error(self, trace):
        exc, problem = trace.error, trace.problem
        arithmetic = list(problem.arithmetic) if problem else []
        before = [c for c in trace.calls[:trace.failed or 0] if c.output_shape]
        if arithmetic and "channels" in arithmetic[0] and before:
            prev = before[-1]
            arithmetic.append(f"(the input comes from [{prev.index}] {prev.name}, whose "
                              f"output is {prev.output_shape})")
        return {"where": trace.where, "layer": trace.failed,
                "torch_error": f"{type(exc).__name__}: {exc}",
                "arithmetic": arithmetic,
                "fixes": problem.fixes if problem else []}

    # ---- dependencies -----------------------------------------------------

    def _chain(self, layer):
        if layer is None:
            chain = self._trace.output_chain if self._trace else None
            what = "the model output"
        else:
            call = self._call(layer)
            chain, what = call.chain, f"layer [{call.index}] {call.name}"
        if self.error is not None:
            raise ValueError(f"convext.explain: this configuration is invalid "
                             f"({self.error['torch_error']}); no dependencies to follow")
        if isinstance(chain, Unknown) or chain is None:
            known = [c for c in self._trace.calls
                     if isinstance(c.chain, Chain) and c.chain.layers]
            hint = (f"; pass layer={known[-1].index} (or '{known[-1].name}') to ask about "
                    "the last layer whose positions are known") if known else ""
            reason = chain.reason if chain is not None else "no output"
            raise ValueError(f"convext.explain: positions of {what} are unknown: {reason}"
                             + hint)
        if not chain.layers:
            raise ValueError(f"convext.explain: {what} went through no conv or pooling layer")
        return [self._trace.calls[i] for i in chain.layers]

    def _call(self, layer):
        for call in self._trace.calls:
            if layer in (call.index, call.name):
                return call
        raise KeyError(f"convext.explain: no layer {layer!r}; layers are "
                       + ", ".join(f"{c.index} ({c.name})" for c in self._trace.calls))

    @staticmethod
    def _index(index, sizes, what):
        index = (index,) if isinstance(index, int) else tuple(index)
        if len(index) != len(sizes) or not all(0 <= i < n for i, n in zip(index, sizes)):
            raise IndexError(f"convext.explain: {what} position {index} is outside the "
                             f"spatial size {tuple(sizes)} (one index per spatial axis, "
                             "counted from 0)")
        return index

    def levels(self, index, layer=None):
        """inputs_of, level by level: [(call, [per-axis (raw cells, real cells)])]
        from the last layer of the chain back to the first."""
        calls = self._chain(layer)
        dims = calls[-1].geometry.dims
        index = self._index(index, calls[-1].output_shape[-dims:], "output")
        sets = [{i} for i in index]
        out = []
        for call in reversed(calls):
            geo, sizes = call.geometry, call.input_shape[-dims:]
            step = []
            for i in range(dims):
                raw = sorted({q for o in sets[i] for q in geometry.taps(geo, i, o, sizes[i])
                              if q >= -geo.axes[i].pad_left})
                realset = sorted({r for r in (geometry.real(geo, q, sizes[i]) for q in raw)
                                  if r is not None})
                step.append((raw, realset))
            out.append((call, step))
            sets = [set(s[1]) for s in step]
        return out

    def inputs_of(self, index, layer=None):
        """The model-input region one output position reads (padding cells
        included): a Region. `index`: an int (1D) or (h, w); `layer`: ask
        about that layer's output instead of the model's."""
        levels = self.levels(index, layer)
        first = levels[-1][0]
        dims = first.geometry.dims
        sizes = first.input_shape[-dims:]
        index = (index,) if isinstance(index, int) else tuple(index)
        return Region(index, [{"cells": raw, "inside": realset, "size": sizes[i]}
                              for i, (raw, realset) in enumerate(levels[-1][1])])

    def outputs_of(self, index, layer=None):
        """Every output position (of the model, or of `layer`) that input
        position `index` affects: ints (1D) or (h, w) pairs, sorted."""
        calls = self._chain(layer)
        dims = calls[0].geometry.dims
        index = self._index(index, calls[0].input_shape[-dims:], "input")
        per_axis = []
        for i in range(dims):
            cur = {index[i]}
            for call in calls:
                rev = self._reverse(call, i)
                cur = {o for x in cur for o in rev.get(x, ())}
            per_axis.append(sorted(cur))
        if dims == 1:
            return per_axis[0]
        return [(h, w) for h in per_axis[0] for w in per_axis[1]]

    def _reverse(self, call, i):
        key = (call.index, i)
        if key not in self._rev:
            geo = call.geometry
            size = call.input_shape[-geo.dims:][i]
            rev = {}
            for o in range(call.output_shape[-geo.dims:][i]):
                for q in geometry.taps(geo, i, o, size):
                    r = geometry.real(geo, q, size)
                    if r is not None:
                        rev.setdefault(r, set()).add(o)
            self._rev[key] = rev
        return self._rev[key]

    # ---- output ------------------------------------------------------------

    def to_dict(self):
        return report.to_dict(self)

    def __str__(self):
        return report.text(self)

    def __repr__(self):
        return (f"<Explanation {self.title}: {self.input_shape} -> {self.output_shape}, "
                f"{len(self.layers)} layers{', INVALID' if self.error else ''}>")

    def draw(self, index=None, layer=None):
        """Text drawing of the input cells output `index` reads."""
        from . import draw
        return draw.text(self, index, layer)

    def save_png(self, path, index=None, layer=None):
        """Picture of input, taps and output alignment (needs matplotlib)."""
        from . import draw
        return draw.png(self, path, index, layer)


def _one(values):
    values = list(values)
    return values[0] if len(values) == 1 else tuple(values)
