"""Pictures of what one output reads: a text drawing on the input row (1D)
or grid (2D) with the padding shown, and a PNG (matplotlib) that also lines
every intermediate layer up under the input, each output cell centred on
the window it reads."""
from . import geometry

READ, PAD_READ, UNREAD, PAD = "#", "o", ".", "-"
LEGEND = (f"{READ} = input cell read, {PAD_READ} = padding cell read, "
          f"{UNREAD} = input cell not read, {PAD} = padding not read")
_CAP, _CAP_2D = 40, 24


def _default(expl, index, layer):
    if index is not None:
        return index
    calls = expl._chain(layer)
    return 0 if calls[-1].geometry.dims == 1 else (0, 0)


def _window(lo, hi, cells, cap=_CAP):
    """Positions to show between lo and hi (inclusive) around `cells`; None
    marks an ellipsis."""
    if hi - lo + 1 > cap and cells:
        lo, hi = max(lo, cells[0] - 3), min(hi, cells[-1] + 3)
    if hi - lo + 1 <= cap:
        return list(range(lo, hi + 1))
    half = cap // 2 - 1
    return list(range(lo, lo + half)) + [None] + list(range(hi - half + 1, hi + 1))


def _symbol(inside, read):
    if inside:
        return READ if read else UNREAD
    return PAD_READ if read else PAD


def text(expl, index=None, layer=None):
    index = _default(expl, index, layer)
    levels = expl.levels(index, layer)
    first, axes = levels[-1]
    geo = first.geometry
    sizes = first.input_shape[-geo.dims:]
    shown, raw = [], []
    for i, (cells, _) in enumerate(axes):
        a = geo.axes[i]
        lo, hi = -a.pad_left, sizes[i] + a.pad_right - 1
        if geo.kind == "transposed":
            lo, hi = 0, sizes[i] - 1
        shown.append(_window(lo, hi, cells, _CAP if geo.dims == 1 else _CAP_2D))
        raw.append(set(cells))
    region = expl.inputs_of(index, layer)
    n_pad = len(region.padding)
    what = "the model" if layer is None else f"layer [{levels[0][0].index}]"
    count = " x ".join(str(len(c)) for c, _ in axes)
    head = (f"Output {index if geo.dims == 2 else index} of {what} reads {count} input "
            f"cell(s) ({n_pad} of them padding):")
    lines = [head]
    if geo.dims == 1:
        pos = shown[0]
        width = max(len(str(p)) for p in pos if p is not None) + 1
        row = lambda f: "".join(("~" if p is None else f(p)).rjust(width) for p in pos)  # noqa: E731
        lines.append("  L     " + row(str))
        lines.append("  input " + row(lambda p: _symbol(0 <= p < sizes[0], p in raw[0])))
    else:
        rows, cols = shown
        width = max(len(str(p)) for p in cols if p is not None) + 1
        lead = max(len(str(p)) for p in rows if p is not None) + 5
        lines.append("W".rjust(lead) + "".join(("~" if p is None else str(p)).rjust(width)
                                               for p in cols))
        for r in rows:
            label = ("H " if r == rows[0] else "  ") + ("~" if r is None else str(r))
            cells = []
            for c in cols:
                if r is None or c is None:
                    cells.append("~")
                    continue
                inside = 0 <= r < sizes[0] and 0 <= c < sizes[1]
                cells.append(_symbol(inside, r in raw[0] and c in raw[1]))
            lines.append(label.ljust(lead) + "".join(s.rjust(width) for s in cells))
    lines.append("  " + LEGEND + ("; ~ = cells left out" if any(
        None in s for s in shown) else ""))
    if geo.padding_mode != "zeros":
        lines.append(f"  (padding_mode='{geo.padding_mode}': a padding cell holds a copy "
                     "of a real input cell)")
    if len(levels) == 1 and geo.dims == 1 and geo.kind != "transposed":
        a, o = geo.axes[0], index if isinstance(index, int) else index[0]
        taps = [f"w[{t}]*x[{o * a.stride - a.pad_left + t * a.dilation}]"
                for t in range(a.kernel)]
        lines.append(f"  output[{o}] = " + " + ".join(taps) + " (summed over the input "
                     "channels, plus bias)" * (geo.kind == "conv"))
    return "\n".join(lines)


def png(expl, path, index=None, layer=None):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise RuntimeError("convext.explain: --png needs matplotlib "
                           "(pip install matplotlib)") from None
    index = _default(expl, index, layer)
    levels = expl.levels(index, layer)
    geo = levels[-1][0].geometry
    if geo.dims == 2:
        return _png_2d(expl, path, index, layer, plt, Rectangle, MaxNLocator)
    first = levels[-1][0]
    size = first.input_shape[-1]
    a = geo.axes[0]
    lo = -a.pad_left if geo.kind != "transposed" else 0
    hi = size + (a.pad_right if geo.kind != "transposed" else 0) - 1
    cells0 = levels[-1][1][0][0]
    pos = [p for p in _window(lo, hi, cells0, 60) if p is not None]
    xmin, xmax = pos[0] - 0.5, pos[-1] + 0.5
    # rows: the input, then every layer of the chain, first to last
    rows = [("input", None, [(p, 1.0, p) for p in pos], set(cells0), size)]
    chain = [lv[0] for lv in reversed(levels)]
    wanted = [set(lv[1][0][1]) for lv in reversed(levels)][1:] + [{index}]
    for call, want in zip(chain, wanted):
        f = expl._field(call.chain)[0]
        n = call.output_shape[-1]
        cells = []
        for o in range(n):
            centre = float(f.start + o * f.jump + (f.size - 1) / 2)
            if xmin <= centre <= xmax:
                cells.append((o, float(f.jump), centre))
        rows.append((f"[{call.index}] {type(call.module).__name__}", call, cells, want, n))
    fig_h = 1.2 + 1.0 * len(rows)
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(pos) + 2), fig_h))
    ys = {}
    for r, (label, call, cells, want, n) in enumerate(rows):
        y = -1.6 * r
        ys[r] = y
        ax.text(xmin - 0.8, y, label, ha="right", va="center", fontsize=9)
        for o, width, x in cells:
            inside = 0 <= o < n
            colour = ("tab:orange" if o in want else "white") if inside else \
                ("tab:red" if o in want else "lightgrey")
            ax.add_patch(Rectangle((x - width / 2 + 0.05, y - 0.4), width - 0.1, 0.8,
                                   facecolor=colour, edgecolor="black", linewidth=0.6))
            if len(cells) <= 50:
                ax.text(x, y, str(o), ha="center", va="center", fontsize=7)
    # lines from each read cell to the cells it reads one row up
    for r in range(1, len(rows)):
        call = rows[r][1]
        centres_up = {o: x for o, _, x in rows[r - 1][2]}
        g, size_in = call.geometry, call.input_shape[-1]
        for o, _, x in rows[r][2]:
            if o not in rows[r][3]:
                continue
            for q in geometry.taps(g, 0, o, size_in):
                if q in centres_up:
                    ax.plot([x, centres_up[q]], [ys[r] + 0.4, ys[r - 1] - 0.4],
                            color="tab:blue", linewidth=0.8)
    ax.set_xlim(xmin - 6, xmax + 0.5)
    ax.set_ylim(ys[len(rows) - 1] - 1, 1.2)
    ax.axis("off")
    ax.set_title(f"output {index}: orange = cells it depends on, red = padding it reads, "
                 "grey = padding", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _png_2d(expl, path, index, layer, plt, Rectangle, MaxNLocator):
    region = expl.inputs_of(index, layer)
    levels = expl.levels(index, layer)
    first, last = levels[-1][0], levels[0][0]
    geo = first.geometry
    sizes = first.input_shape[-2:]
    pads = [(a.pad_left, a.pad_right) if geo.kind != "transposed" else (0, 0)
            for a in geo.axes]
    read = set(region.cells)
    fig, (ax_in, ax_out) = plt.subplots(1, 2, figsize=(10, 5))
    for h in range(-pads[0][0], sizes[0] + pads[0][1]):
        for w in range(-pads[1][0], sizes[1] + pads[1][1]):
            inside = 0 <= h < sizes[0] and 0 <= w < sizes[1]
            colour = ("tab:orange" if (h, w) in read else "white") if inside else \
                ("tab:red" if (h, w) in read else "lightgrey")
            ax_in.add_patch(Rectangle((w - 0.5, h - 0.5), 1, 1, facecolor=colour,
                                      edgecolor="black", linewidth=0.3))
    ax_in.set_xlim(-pads[1][0] - 0.5, sizes[1] + pads[1][1] - 0.5)
    ax_in.set_ylim(sizes[0] + pads[0][1] - 0.5, -pads[0][0] - 0.5)
    ax_in.set_aspect("equal")
    ax_in.set_title(f"input {tuple(sizes)}: orange = read, red = padding read, grey = padding",
                    fontsize=9)
    out = last.output_shape[-2:]
    for h in range(out[0]):
        for w in range(out[1]):
            colour = "tab:orange" if (h, w) == tuple(index) else "white"
            ax_out.add_patch(Rectangle((w - 0.5, h - 0.5), 1, 1, facecolor=colour,
                                       edgecolor="black", linewidth=0.3))
    ax_out.set_xlim(-0.5, out[1] - 0.5)
    ax_out.set_ylim(out[0] - 0.5, -0.5)
    ax_out.set_aspect("equal")
    for a in (ax_in, ax_out):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_out.set_title(f"output {tuple(out)}: orange = output {tuple(index)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
