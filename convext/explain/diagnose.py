"""Why torch rejects a layer, and what would fix it; and the legal but
surprising configurations worth a warning.

`check` predicts, from a layer's geometry and its input shape alone, the
errors torch raises for conv and pooling layers, in torch's order, with the
arithmetic behind each and the smallest changes that make the layer valid.
The exact error text always comes from torch itself (see trace.cpu_error);
tests hold `check` to torch's verdict. `pitfalls` lists the warnings."""
import math
from dataclasses import dataclass, field

from . import geometry


@dataclass
class Problem:
    arithmetic: list                 # lines: the numbers that make it impossible
    fixes: list = field(default_factory=list)   # smallest changes that make it valid


def _layout(dims):
    return ("(C, L) or (N, C, L)" if dims == 1 else "(C, H, W) or (N, C, H, W)")


def check(module, geo, shape):
    """The Problem torch will raise for this layer on an input of `shape`,
    or None when torch accepts it."""
    dims = geometry.dims_of(module)
    kind_name = type(module).__name__
    if len(shape) not in (dims + 1, dims + 2):
        fixes = [f"reshape the input to {_layout(dims)}"]
        if len(shape) - 2 in (1, 2):
            fixes.append("or use " + kind_name.replace(f"{dims}d", f"{len(shape) - 2}d"))
        return Problem([f"{kind_name} reads {_layout(dims)} tensors ({dims + 1} or "
                        f"{dims + 2} axes), but this input has {len(shape)} axes: "
                        f"{tuple(shape)}"], fixes)
    if geo is None:
        return None   # arguments torch will reject by itself: report its text
    if geo.kind in ("conv", "transposed"):
        problem = _channels(module, shape, dims)
        if problem is not None:
            return problem
        if geo.same and any(a.stride != 1 for a in geo.axes):
            return _same_strided(geo, shape)
    if geo.kind == "transposed":
        for i, a in enumerate(geo.axes):
            if a.output_padding >= a.stride and a.output_padding >= a.dilation:
                top = max(a.stride, a.dilation) - 1
                return Problem([f"output_padding {a.output_padding} along {geo.names[i]} is "
                                f"not smaller than stride {a.stride} or dilation "
                                f"{a.dilation}: it would add outputs that no input reaches"],
                               [f"use output_padding={top} (or smaller)",
                                f"or stride={a.output_padding + 1}"])
    if geo.kind in ("maxpool", "avgpool"):
        for i, a in enumerate(geo.axes):
            if a.pad_left > a.kernel // 2:
                return Problem([f"padding {a.pad_left} along {geo.names[i]} is more than half "
                                f"the kernel ({a.kernel} // 2 = {a.kernel // 2}): a window "
                                "could then hold nothing but padding"],
                               [f"use padding={a.kernel // 2} (or smaller)",
                                f"or kernel_size={2 * a.pad_left}"])
    sizes = shape[-dims:]
    for i, a in enumerate(geo.axes):
        if geometry.out_size(geo, i, sizes[i]) < 1:
            return (_transposed_empty(geo, i, sizes[i]) if geo.kind == "transposed"
                    else _too_small(geo, i, sizes[i]))
    return None


def _channels(module, shape, dims):
    c = shape[-dims - 1]
    want, groups = module.in_channels, module.groups
    if c == want:
        return None
    axis = "0" if len(shape) == dims + 1 else "1"
    fixes = []
    if groups == 1 or c % groups == 0:
        fixes.append(f"build the layer with in_channels={c}")
    fixes.append(f"or feed it {want} channels")
    return Problem([f"the input has {c} channels (axis {axis} of {tuple(shape)}), but the "
                    f"layer was built for in_channels={want}"
                    + (f" (groups={groups})" if groups != 1 else "")], fixes)


def _same_strided(geo, shape):
    sizes = shape[-geo.dims:]
    explicit = [a.dilation * (a.kernel - 1) // 2 for a in geo.axes]
    outs = []
    for i, a in enumerate(geo.axes):
        room = sizes[i] + 2 * explicit[i] - a.span
        outs.append(f"{geo.names[i]}_out = {room // a.stride + 1}")
    pad = explicit[0] if geo.dims == 1 else tuple(explicit)
    return Problem(["padding='same' promises output size == input size, which a stride "
                    f"of {_axis_values(geo, 'stride')} cannot keep"],
                   ["use stride=1",
                    f"or give the padding explicitly: padding={pad} ({', '.join(outs)})"])


def _axis_values(geo, attr):
    vals = [getattr(a, attr) for a in geo.axes]
    return vals[0] if geo.dims == 1 else tuple(vals)


_WORD = {"L": "length", "H": "height", "W": "width"}


def _too_small(geo, i, size):
    a, name = geo.axes[i], _WORD[geo.names[i]]
    padded = size + a.pad_left + a.pad_right
    kernel = (f"dilated kernel {a.dilation}*({a.kernel}-1)+1 = {a.span}" if a.dilation > 1
              else f"kernel {a.kernel}")
    inp = (f"input {name} {size}" if padded == size else
           f"padded input {name} {size} + {a.pad_left} + {a.pad_right} = {padded}")
    fixes = []
    more = -(-(a.span - padded) // 2)
    symmetric = a.pad_left == a.pad_right and not geo.same
    if symmetric and (geo.kind == "conv" or a.pad_left + more <= a.kernel // 2):
        fixes.append(f"pad by {more} (padding={a.pad_left + more})")
    if padded >= 1:
        fixes.append(f"use kernel_size={(padded - 1) // a.dilation + 1}")
        if a.dilation > 1 and a.kernel > 1 and (padded - 1) // (a.kernel - 1) >= 1:
            fixes.append(f"use dilation={(padded - 1) // (a.kernel - 1)}")
    fixes.append(f"feed at least {a.span - a.pad_left - a.pad_right} cells along the {name}")
    fixes[1:] = ["or " + f for f in fixes[1:]]
    return Problem([f"{inp} < {kernel}: not even one window fits"], fixes)


def _transposed_empty(geo, i, size):
    a, name = geo.axes[i], geo.names[i]
    value = geometry.out_size(geo, i, size)
    full = value + a.pad_left + a.pad_right
    return Problem([geometry.formula(geo, i, size)["filled"] + " < 1: the padding crops "
                    "away every output"],
                   [f"use padding={max(0, (full - 1) // 2)} (or smaller)"])


def constructor(text):
    """Fixes for errors torch raises while building a layer (CLI specs)."""
    if "same" in text and "strided" in text:
        return Problem(["padding='same' promises output size == input size, which a "
                        "stride > 1 cannot keep"],
                       ["use stride=1", "or give the padding explicitly: "
                        "padding=dilation*(kernel_size-1)//2"])
    if "divisible by groups" in text:
        return Problem(["channels are split into `groups` equal parts, so in_channels and "
                        "out_channels must both be multiples of groups"],
                       ["choose groups that divides both channel counts"])
    return None


# ---- pitfalls: legal, but probably not what was meant ---------------------

def pitfalls(call, has_1d):
    geo, module, shape = call.geometry, call.module, call.input_shape
    out = []
    dims = geometry.dims_of(module)
    if dims == 2 and len(shape) == 3 and (has_1d or (getattr(call.chain_in, "dims", None) == 1)):
        verb = "slides" if geo is not None and geo.kind in ("conv", "transposed") else "pools"
        out.append(f"{type(module).__name__} got a 3-axis tensor {shape}: torch reads it as "
                   f"ONE unbatched image (C, H, W), so it {verb} across your channels axis "
                   "as if it were a height. For (N, C, L) data use the 1D layer.")
    if geo is None:
        return out
    sizes = shape[-dims:]
    for i, a in enumerate(geo.axes):
        name = geo.names[i]
        if geo.same and a.pad_left != a.pad_right:
            out.append(f"padding='same' with an even kernel span ({a.span}) along {name}: "
                       f"torch pads {a.pad_left} before and {a.pad_right} after, so output j "
                       "is not centred on input j")
        if geo.kind == "transposed":
            empty = [o for o in range(geometry.out_size(geo, i, sizes[i]))
                     if not geometry.taps(geo, i, o, sizes[i])][:_LIST]
            if empty:
                out.append(f"stride {a.stride} > dilated kernel span {a.span} along {name}: "
                           f"some outputs get no input at all, only the bias (e.g. {name} "
                           f"= {_some(empty)})")
            continue
        unread = unread_inputs(geo, i, sizes[i])
        if not unread:
            continue
        if a.stride > a.span:
            why = (f"stride {a.stride} > kernel span {a.span}: each step skips "
                   f"{a.stride - a.span} input cell(s)")
        elif a.stride > 1 and a.dilation > 1 and math.gcd(a.stride, a.dilation) > 1:
            g = math.gcd(a.stride, a.dilation)
            why = (f"dilation {a.dilation} leaves gaps between taps and stride {a.stride} "
                   f"shares the factor {g} with it, so the gaps are never filled")
        else:
            why = ("the last window ends before the input does (the floor in the formula "
                   "drops what is left)")
        out.append(f"{len(unread)} input cell(s) along {name} are never read ({name} = "
                   f"{_some(unread)}): {why}")
    return out


_LIST = 8
_BIG = 2_000_000


def unread_inputs(geo, i, size):
    """Input cells along axis i that no output reads (None when too big to
    enumerate)."""
    n_out = geometry.out_size(geo, i, size)
    if n_out * geo.axes[i].kernel > _BIG:
        return []
    seen = set()
    for o in range(n_out):
        for q in geometry.taps(geo, i, o, size):
            r = geometry.real(geo, q, size)
            if r is not None:
                seen.add(r)
    return [q for q in range(size) if q not in seen]


def _some(cells):
    text = ", ".join(str(c) for c in cells[:_LIST])
    return text + (", ..." if len(cells) > _LIST else "")
