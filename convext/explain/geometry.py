"""Index arithmetic of the layers whose geometry is known: convolutions,
transposed convolutions and max/avg pooling, 1D and 2D.

Per spatial axis such a layer is a handful of integers (kernel, stride,
padding on each side, dilation, ...). From them, without running anything:
the output size and the formula that gives it with the layer's own numbers,
the input cells one output reads ("taps"), and the receptive field and jump
of a chain of layers. Every axis is independent of the others, so 2D is two
1D problems side by side."""
import math
from dataclasses import dataclass
from fractions import Fraction

from torch import nn

CONV = (nn.Conv1d, nn.Conv2d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d)
MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d)
AVGPOOL = (nn.AvgPool1d, nn.AvgPool2d)
KNOWN = CONV + TRANSPOSED + MAXPOOL + AVGPOOL

# Layers that work on each position on its own: the receptive field passes
# through them unchanged. (BatchNorm in training mode uses batch statistics
# over every position; like every receptive-field tool we count the window.)
ELEMENTWISE = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU,
    nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish,
    nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Threshold, nn.LogSigmoid,
    nn.Hardshrink, nn.Softshrink, nn.RReLU, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.AlphaDropout, nn.BatchNorm1d, nn.BatchNorm2d,
)

AXIS_NAMES = {1: ("L",), 2: ("H", "W")}


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a layer."""
    kernel: int
    stride: int
    pad_left: int
    pad_right: int
    dilation: int = 1
    output_padding: int = 0
    ceil_mode: bool = False

    @property
    def span(self):
        """Cells one window covers from its first to its last tap."""
        return self.dilation * (self.kernel - 1) + 1


@dataclass(frozen=True)
class Geometry:
    kind: str                   # "conv", "transposed", "maxpool" or "avgpool"
    axes: tuple
    padding_mode: str = "zeros"
    same: bool = False          # built with padding='same'

    @property
    def dims(self):
        return len(self.axes)

    @property
    def names(self):
        return AXIS_NAMES[self.dims]


def _tuple(value, dims):
    if isinstance(value, (tuple, list)):
        value = tuple(int(v) for v in value)
        return value * dims if len(value) == 1 else value
    return (int(value),) * dims


def _kind(module):
    kind = getattr(module, "explain_kind", None)   # FunctionalConv says itself
    if kind is not None:
        return kind
    for classes, name in ((TRANSPOSED, "transposed"), (CONV, "conv"),
                          (MAXPOOL, "maxpool"), (AVGPOOL, "avgpool")):
        if isinstance(module, classes):
            return name
    return None


_TWO_D = (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d)


def dims_of(module):
    """1 or 2 for a known layer, else None."""
    if _kind(module) is None:
        return None
    return getattr(module, "explain_dims", None) or (2 if isinstance(module, _TWO_D) else 1)


def from_module(module):
    """The Geometry of a known layer, or None for anything else (or for
    arguments torch itself would reject: the caller reports those)."""
    kind = _kind(module)
    if kind is None:
        return None
    dims = dims_of(module)
    try:
        k = _tuple(module.kernel_size, dims)
        s = _tuple(module.stride if module.stride is not None else module.kernel_size, dims)
        d = _tuple(getattr(module, "dilation", 1), dims)
        same = False
        if isinstance(module.padding, str):
            same = module.padding == "same"
            total = [di * (ki - 1) if same else 0 for ki, di in zip(k, d)]
            pads = [(t // 2, t - t // 2) for t in total]
        else:
            pads = [(p, p) for p in _tuple(module.padding, dims)]
        op = _tuple(getattr(module, "output_padding", 0), dims)
        ceil = bool(getattr(module, "ceil_mode", False))
        if not all(len(v) == dims for v in (k, s, d, op, pads)):
            return None
        if min(k + s + d) < 1 or min(min(p) for p in pads) < 0:
            return None
    except (TypeError, ValueError):
        return None
    axes = tuple(Axis(k[i], s[i], pads[i][0], pads[i][1], d[i], op[i], ceil)
                 for i in range(dims))
    mode = getattr(module, "padding_mode", "zeros") if kind == "conv" else "zeros"
    return Geometry(kind, axes, mode, same)


# ---- output size ---------------------------------------------------------

def out_size(geo, i, size):
    """Output size along axis i for an input of `size` cells (may be <= 0:
    torch rejects such a layer)."""
    a = geo.axes[i]
    if geo.kind == "transposed":
        return ((size - 1) * a.stride - a.pad_left - a.pad_right + a.span
                + a.output_padding)
    room = size + a.pad_left + a.pad_right - a.span
    if a.ceil_mode:
        n = -(-room // a.stride) + 1
        if (n - 1) * a.stride >= size + a.pad_left:
            n -= 1
        return n
    return room // a.stride + 1


def _pad_term(a, symbolic):
    if a.pad_left == a.pad_right:
        return "2*padding" if symbolic else f"2*{a.pad_left}"
    return "pad_left + pad_right" if symbolic else f"{a.pad_left} + {a.pad_right}"


def formula(geo, i, size):
    """{'axis', 'symbolic', 'filled', 'value'}: how torch gets the output size
    along axis i, first in words, then with this layer's numbers."""
    a, name = geo.axes[i], geo.names[i]
    value = out_size(geo, i, size)
    if geo.kind == "transposed":
        sym = (f"{name}_out = ({name}_in - 1)*stride - 2*padding"
               f" + dilation*(kernel_size-1) + output_padding + 1")
        filled = (f"{name}_out = ({size} - 1)*{a.stride} - 2*{a.pad_left}"
                  f" + {a.dilation}*({a.kernel}-1) + {a.output_padding} + 1 = {value}")
        return {"axis": name, "symbolic": sym, "filled": filled, "value": value}
    rnd = "ceil" if a.ceil_mode else "floor"
    sym = (f"{name}_out = {rnd}(({name}_in + {_pad_term(a, True)}"
           f" - dilation*(kernel_size-1) - 1) / stride) + 1")
    filled = (f"{name}_out = {rnd}(({size} + {_pad_term(a, False)}"
              f" - {a.dilation}*({a.kernel}-1) - 1) / {a.stride}) + 1")
    room = size + a.pad_left + a.pad_right - a.span
    if a.ceil_mode and value != -(-room // a.stride) + 1:
        filled += " - 1 (ceil_mode: a last window starting in the right padding is dropped)"
    return {"axis": name, "symbolic": sym, "filled": f"{filled} = {value}", "value": value}


# ---- taps: which input cells one output reads ----------------------------

def taps(geo, i, o, size):
    """Input positions (this layer's input coordinates) that output o reads
    along axis i. Negative or >= size: padding cells (not for transposed
    convs, whose 'padding' crops the output instead)."""
    a = geo.axes[i]
    if geo.kind == "transposed":
        out = []
        for t in range(a.kernel):
            num = o + a.pad_left - t * a.dilation
            if num % a.stride == 0 and 0 <= num // a.stride < size:
                out.append(num // a.stride)
        return sorted(out)
    first = o * a.stride - a.pad_left
    return [q for q in (first + t * a.dilation for t in range(a.kernel))
            if q < size + a.pad_right]


def real(geo, q, size):
    """The input cell whose value padding cell / position q holds, or None
    for zero (or -inf) padding."""
    if 0 <= q < size:
        return q
    mode = geo.padding_mode
    if mode == "reflect":
        return -q if q < 0 else 2 * (size - 1) - q
    if mode == "replicate":
        return 0 if q < 0 else size - 1
    if mode == "circular":
        return q % size
    return None


# ---- receptive field of a chain ------------------------------------------

@dataclass(frozen=True)
class Field:
    """What one output of a chain sees along one axis, on an unbounded input
    (no borders): `size` cells from the first to the last one read, outputs
    `jump` input cells apart, output 0 starting at input cell `start`."""
    size: int
    jump: Fraction
    start: int


def fields(chain):
    """Field per axis after each layer of `chain` (a list of Geometry of the
    same dims); one list of per-axis Fields per layer.

    Exact, not the textbook closed form (which goes fractional through
    transposed convs): output o reads the set bases[o % period] shifted by
    (o // period) * shift input cells, and each layer maps those sets."""
    if not chain:
        return []
    result = []
    for i in range(chain[0].dims):
        period, shift, bases = 1, 1, [(0,)]
        per_layer = []
        for geo in chain:
            period, shift, bases = _through(geo.axes[i], geo.kind, period, shift, bases)
            spans = [b[-1] - b[0] + 1 for b in bases if b]
            per_layer.append(Field(max(spans, default=0), Fraction(shift, period),
                                   bases[0][0] if bases[0] else 0))
        result.append(per_layer)
    return [tuple(axis[n] for axis in result) for n in range(len(chain))]


def _through(a, kind, period, shift, bases):
    def seen(q):  # input positions read by previous-level position q
        base = bases[q % period]
        off = (q // period) * shift
        return (x + off for x in base)

    if kind == "transposed":
        new_period, new_shift = period * a.stride, shift
        offsets = None
    else:
        new_period = period // math.gcd(period, a.stride)
        new_shift = new_period * a.stride // period * shift
        offsets = [-a.pad_left + t * a.dilation for t in range(a.kernel)]
    new = []
    for o in range(new_period):
        cells = set()
        if offsets is None:
            for t in range(a.kernel):
                num = o + a.pad_left - t * a.dilation
                if num % a.stride == 0:
                    cells.update(seen(num // a.stride))
        else:
            for off in offsets:
                cells.update(seen(o * a.stride + off))
        new.append(tuple(sorted(cells)))
    return new_period, new_shift, new
