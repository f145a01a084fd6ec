"""--plot: a PNG bar chart of convext/native time ratios per shape, one panel
per dtype and layout. matplotlib is optional (pip install convext[bench])."""
from .report import LABEL, LAYOUT, groups


def available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    directions = result["settings"]["directions"]
    panels = list(groups(result["rows"]).items())
    width = min(18, 3 + 0.5 * max(len(rows) for _, rows in panels))
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 4.5 * len(panels)), squeeze=False)
    bar = 0.8 / len(directions)
    for ax, ((dtype, layout), rows) in zip(axes[:, 0], panels):
        for i, d in enumerate(directions):
            xs = [j + (i - (len(directions) - 1) / 2) * bar for j in range(len(rows))]
            ratios = [r["timings"][d]["ratio"] if d in r["timings"] else float("nan")
                      for r in rows]
            ax.bar(xs, ratios, bar, label=LABEL[d])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 0.5x, 1x, 2x, ...
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([("!! " if r["error"] or not r["check"]["ok"] else "") + r["shape"]
                            for r in rows], rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("convext / native time (lower is better)")
        ax.set_title(f"{dtype}, {LAYOUT[layout]} - {result['meta']['machine']}", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
