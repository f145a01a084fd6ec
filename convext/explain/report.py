"""The readable report (str(explanation)) and the same data as plain
Python for programs (explanation.to_dict()). Written for someone learning
convolutions: the layer's own numbers, and a one-line gloss per term."""
from fractions import Fraction

from . import geometry

GLOSSARY = [
    ("MACs", "multiply-accumulates: one multiply plus one add, the unit of conv work"),
    ("receptive field", "how many neighbouring input cells (per axis) one output value "
                        "depends on, from the first to the last one it reads"),
    ("jump", "how many input cells the window moves when you step to the next output"),
    ("padding", "cells added around the input (zeros unless padding_mode says otherwise) "
                "so windows can hang over the edges"),
]


def _n(value):
    return f"{value:,}"


def _frac(value):
    if isinstance(value, tuple):
        return " x ".join(_frac(v) for v in value)
    if isinstance(value, Fraction) and value.denominator != 1:
        return f"{value} (several outputs per input cell)"
    return str(int(value))


def _cells(value):
    if isinstance(value, tuple):
        return " x ".join(str(v) for v in value) + " input cells"
    return f"{value} input cell{'s' if value != 1 else ''}"


def axes_gloss(shape, dims):
    """'N = batch 2, C = channels 3, L = length 4' for an input shape."""
    if dims is None or len(shape) not in (dims + 1, dims + 2):
        return ""
    names = (["N = batch"] if len(shape) == dims + 2 else []) + ["C = channels"]
    names += [{"L": "L = length", "H": "H = height", "W": "W = width"}[n]
              for n in geometry.AXIS_NAMES[dims]]
    return ", ".join(f"{n} {s}" for n, s in zip(names, shape)) + \
        ("" if len(shape) == dims + 2 else " (unbatched: no N axis)")


def _first_dims(expl):
    for call in (expl._trace.calls if expl._trace else []):
        if call.geometry is not None:
            return call.geometry.dims
    return None


def text(expl):
    lines = [f"convext.explain: {expl.title} on input {expl.input_shape}"]
    gloss = axes_gloss(expl.input_shape, _first_dims(expl))
    if gloss:
        lines.append(f"  ({gloss})")
    for layer in expl.layers:
        lines.append("")
        lines += _layer_lines(layer)
    if expl.error is not None:
        lines += [""] + _error_lines(expl.error)
        return "\n".join(lines)
    lines += ["", "Summary",
              f"  output shape     {expl.output_shape}",
              f"  parameters       {_n(expl.params)}",
              f"  MACs             {_n(expl.macs)}"]
    if expl.receptive_field is not None:
        lines.append(f"  receptive field  {_cells(expl.receptive_field)}: each output "
                     "value depends on at most this many neighbouring input cells")
        lines.append(f"  jump             {_frac(expl.jump)}: neighbouring outputs look "
                     "this many input cells apart")
    elif expl.field_note:
        lines.append(f"  receptive field  unknown: {expl.field_note}")
        known = [la for la in expl.layers if la.receptive_field is not None]
        if known:
            lines.append(f"                   (the last layer with a known one, [{known[-1].index}]"
                         f" {known[-1].name}, sees {_cells(known[-1].receptive_field)}; "
                         f"ask e.inputs_of(index, layer={known[-1].index}))")
    if expl.warnings:
        lines += ["", "Warnings"] + [f"  ! {w}" for w in expl.warnings]
    lines += ["", "Words"] + [f"  {k}: {v}" for k, v in GLOSSARY]
    return "\n".join(lines)


def _layer_lines(layer):
    out = [f"[{layer.index}] {layer.name}   "
           f"{layer.input_shape} -> {layer.output_shape if layer.output_shape else '(failed)'}"]
    pad = " " * 4
    if layer.does:
        out.append(f"{pad}what it does    {layer.does}")
    for i, f in enumerate(layer.formula):
        if i == 0:
            out.append(f"{pad}output size     {f['symbolic']}")
        out.append(f"{pad}                {f['filled']}")
    if layer.weight:
        out.append(f"{pad}weight          {layer.weight['shape']}, one axis each:")
        for size, meaning in layer.weight["axes"]:
            out.append(f"{pad}                  {size} = {meaning}")
    if layer.bias:
        out.append(f"{pad}bias            {layer.bias['shape']}: "
                   f"{layer.bias['axes'][0][1]}")
    if layer.params:
        out.append(f"{pad}parameters      {_n(layer.params)}")
    if layer.macs:
        formula = f" = {layer.macs_formula}" if layer.macs_formula else ""
        out.append(f"{pad}MACs            {_n(layer.macs)}{formula}")
    if layer.receptive_field is not None:
        out.append(f"{pad}each output     sees {_cells(layer.receptive_field)} of the model "
                   f"input (receptive field); the next output's window starts "
                   f"{_frac(layer.jump)} cell(s) further (jump)")
    elif layer.field_note and layer.output_shape:
        out.append(f"{pad}each output     sees: unknown from here on ({layer.field_note})")
    for w in layer.warnings:
        out.append(f"{pad}! {w}")
    return out


def _error_lines(error):
    out = [f"ERROR in {error['where']}: torch cannot run this",
           f"  torch says  {error['torch_error']}"]
    for line in error["arithmetic"]:
        out.append(f"  why         {line}")
    if error["fixes"]:
        out.append(f"  fix         {', '.join(error['fixes'])}")
    return out


def plain(obj):
    """JSON-ready copy: tuples -> lists, Fractions -> int or "p/q"."""
    if isinstance(obj, Fraction):
        return int(obj) if obj.denominator == 1 else str(obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def to_dict(expl):
    return plain({
        "title": expl.title,
        "input_shape": expl.input_shape,
        "output_shape": expl.output_shape,
        "params": expl.params,
        "macs": expl.macs,
        "receptive_field": expl.receptive_field,
        "jump": expl.jump,
        "field_note": expl.field_note,
        "layers": [layer.to_dict() for layer in expl.layers],
        "warnings": expl.warnings,
        "error": expl.error,
    })
