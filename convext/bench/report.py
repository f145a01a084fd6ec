"""Turns a run's result dict into text tables, Markdown and JSON.

The same cell lists feed the terminal and the Markdown renderers, so the two
always show the same numbers."""
import json
import math

from .tf32 import line as tf32_line

LABEL = {"fwd": "fwd", "bwd": "bwd", "fwdbwd": "fwd+bwd", "train": "train", "infer": "infer"}
SHORT = {**LABEL, "fwdbwd": "f+b"}  # table headers, to keep rows under ~140 columns
LAYOUT = {"nchw": "NCHW (contiguous)", "channels_last": "channels_last"}


def _ms(seconds):
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _ok(row):
    return row["error"] is None and row["check"] is not None and row["check"]["ok"]


def _status(row):
    if row["error"]:
        return "ERROR " + row["error"][:60]
    if not row["check"]["ok"]:
        worst = max(row["check"]["errors"], key=row["check"]["errors"].get)
        return f"MISMATCH {worst} err {row['check']['errors'][worst]:.1e}"
    return "ok"


def groups(rows):
    """(dtype, layout) -> rows, in first-seen order."""
    out = {}
    for row in rows:
        out.setdefault((row["dtype"], row["layout"]), []).append(row)
    return out


def _geomean(values):
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def geomeans(rows, directions):
    """Geometric mean of convext/native per direction over rows that passed
    the correctness gate (mismatched or failed rows say nothing about speed)."""
    good = [r for r in rows if _ok(r)]
    out = {"n": len(good), "excluded": len(rows) - len(good)}
    for d in directions:
        out[d] = _geomean([r["timings"][d]["ratio"] for r in good if d in r["timings"]])
    return out


def cross_layout(cl_rows, nchw_rows, directions):
    """convext in channels_last against native in NCHW, the layout users get by
    default: geomean per direction over shapes that passed in both layouts."""
    native = {r["shape"]: r["timings"] for r in nchw_rows if _ok(r)}
    good = [r for r in cl_rows if _ok(r) and r["shape"] in native]
    out = {"n": len(good), "excluded": len(cl_rows) - len(good)}
    for d in directions:
        out[d] = _geomean([r["timings"][d]["convext"]["median"] / native[r["shape"]][d]["native"]
                           ["median"] for r in good if d in r["timings"] and d in native[r["shape"]]])
    return out


def headline(directions):
    """The direction whose throughput is shown: fwd+bwd (training) when measured."""
    return "fwdbwd" if "fwdbwd" in directions else directions[0]


def _scratch_cell(row):
    """Peak scratch bytes over the output's bytes, forward and backward."""
    sc = row.get("scratch")
    if not sc or sc["fwd_per_out"] is None:
        return "-"
    return f"{sc['fwd_per_out']:.2f},{sc['bwd_per_out']:.2f}"


def scratch_worst(rows):
    """The largest scratch/out of the rows, per direction, with its shape."""
    out = {}
    for d in ("fwd", "bwd"):
        ratios = [(r["scratch"][f"{d}_per_out"], r["shape"]) for r in rows
                  if r.get("scratch") and r["scratch"][f"{d}_per_out"] is not None]
        if ratios:
            out[d] = dict(zip(("ratio", "shape"), max(ratios)))
    return out


def _scratch_line(worst):
    parts = [f"{d} {w['ratio']:.2f} ({w['shape']})" for d, w in worst.items()]
    return "peak scratch / output bytes, worst: " + ", ".join(parts) if parts else None


def shape_table(rows, directions):
    head = headline(directions)
    headers = ["shape", "N"]
    for d in directions:
        headers += [f"{SHORT[d]} cx", f"{SHORT[d]} nat", f"{SHORT[d]} ratio"]
    headers += [f"cx GF/s {SHORT[head]}", "%peak", f"cx GB/s {SHORT[head]}", "%bw",
                "scratch/out f,b", "check"]
    table = []
    for row in rows:
        name = row["shape"] if _ok(row) else "!! " + row["shape"]
        cells = [name, str(row["batch"])]
        for d in directions:
            t = row["timings"].get(d)
            cells += [_ms(t["convext"]["median"]), _ms(t["native"]["median"]),
                      f"{t['ratio']:.2f}x"] if t else ["-"] * 3
        t = row["timings"].get(head)
        pct = t and t.get("pct_peak_convext")
        cells += [f"{t['gflops_convext']:.1f}" if t else "-",
                  f"{pct:.0f}%" if pct is not None else "-"]
        bw = t and t.get("pct_bandwidth_convext")
        cells += [f"{t['gbs_convext']:.1f}" if t and t.get("gbs_convext") else "-",
                  f"{bw:.0f}%" if bw is not None else "-", _scratch_cell(row), _status(row)]
        table.append(cells)
    return headers, table


def model_table(rows):
    modes = ["train", "infer"]
    headers = ["model", "input"]
    for m in modes:
        headers += [f"{m} cx", f"{m} nat", f"{m} ratio"]
    headers.append("check")
    table = []
    for row in rows:
        cells = [row["model"] if _ok(row) else "!! " + row["model"],
                 "x".join(map(str, row["input"]))]
        for m in modes:
            t = row["timings"].get(m)
            cells += [_ms(t["convext"]["median"]), _ms(t["native"]["median"]),
                      f"{t['ratio']:.2f}x"] if t else ["-"] * 3
        table.append(cells + [_status(row)])
    return headers, table


def render_text(headers, table):
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in table])


def render_markdown(headers, table):
    # Names (first) and status (last) read left to right; numbers align right.
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(headers) - 2) + ["---"]) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in table])


def _geomean_line(g, directions, what="convext/native", unit="shapes"):
    parts = [f"{LABEL[d]} {g[d]:.2f}x" for d in directions if g.get(d)]
    excluded = f" ({g['excluded']} excluded: mismatch/error)" if g["excluded"] else ""
    return f"geomean {what}: {', '.join(parts) or 'n/a'} over {g['n']} {unit}{excluded}"


def _peak_line(dtype, peak):
    if peak.get("gflops"):
        return f"peak {dtype}: {peak['gflops']:.0f} GFLOP/s ({peak['how']})"
    return f"peak {dtype}: {peak.get('how', 'unknown')}"


def _sections(result):
    """(title, headers, table, footer) for every table of the run."""
    s = result["settings"]
    directions = s["directions"]
    by_group = groups(result["rows"])
    for (dtype, layout), rows in by_group.items():
        title = (f"{dtype}, {LAYOUT[layout]}, {result['meta']['device']}: median ms, "
                 "ratio = convext/native")
        footer = [_geomean_line(geomeans(rows, directions), directions)]
        if layout == "channels_last" and (dtype, "nchw") in by_group:
            cross = cross_layout(rows, by_group[dtype, "nchw"], directions)
            footer.append(_geomean_line(cross, directions,
                                        "convext(channels_last)/native(NCHW)"))
        footer.append(_peak_line(dtype, s["peak"].get(dtype, {})))
        if bw := s.get("bandwidth"):
            footer.append(f"bandwidth: {bw['gbs']:.1f} GB/s ({bw['how']}); GB/s and %bw only "
                          "for depthwise shapes: the bytes each direction must move, every "
                          "tensor once")
        if line := _scratch_line(scratch_worst(rows)):
            footer.append(line)
        yield (title, *shape_table(rows, directions), footer)
    modes = ["train", "infer"]
    for (dtype, layout), rows in groups(result.get("models", [])).items():
        footer = [_geomean_line(geomeans(rows, modes), modes, unit="models")]
        yield (f"models, {dtype}, {LAYOUT[layout]}: median ms per step, ratio = convext/native",
               *model_table(rows), footer)


def settings_lines(result):
    m, s = result["meta"], result["settings"]
    tf32 = s["tf32"]
    return [
        f"command: `{s['command']}`",
        f"machine: {m['machine']}",
        f"software: torch {m['torch']}, convext {m['convext']} (cpu_isa {m['convext_cpu_isa']})"
        + (f", CUDA {m['gpu']['cuda_runtime']}, cuDNN {m['gpu']['cudnn']}, driver "
           f"{m['gpu']['driver']}" if "gpu" in m else ""),
        f"commit: {m['git']['commit']}" + (" (dirty tree)" if m["git"]["dirty"] else ""),
        f"threads: {m['threads']} (both sides)"
        + (f"  |  cudnn.benchmark={s['cudnn_benchmark']}" if m["device"] == "cuda" else ""),
        tf32_line(tf32) + "; tolerance " + ", ".join(
            f"{d} {t:g}" for d, t in s.get("tolerance", {}).items()),
        f"timing: interleaved rounds, min {s['timing']['min_run_time']} s and "
        f"{s['timing']['min_rounds']} rounds per side; medians; bwd = {s['bwd_method']}",
        f"time: {m['timestamp']}, wall {result['wall_s']:.0f} s; load average (1 min) "
        f"{m['load_avg']['start']} at start, {m['load_avg']['end']} at end "
        f"({m['cpu']['logical_cpus']} CPUs: above that, other work shared the machine)",
        "ratio = convext time / native time: below 1.00x convext is faster.",
    ]


def text(result):
    out = []
    for title, headers, table, footer in _sections(result):
        out += ["", f"== {title} ==", render_text(headers, table), *footer]
    return "\n".join(out) + "\n"


def markdown(result):
    m = result["meta"]
    out = [f"# convext benchmark: {m['machine']}", ""]
    out += [f"- {line}" for line in settings_lines(result)]
    for title, headers, table, footer in _sections(result):
        out += ["", f"## {title}", "", render_markdown(headers, table), ""]
        out += [f"{line}  " for line in footer]
    mismatches = [r for r in result["rows"] + result.get("models", []) if not _ok(r)]
    if mismatches:
        out += ["", "**Rows marked !! failed the correctness gate or raised; their "
                "timings are not in the geomeans.**"]
    return "\n".join(out) + "\n"


def summary(result):
    directions = result["settings"]["directions"]
    by_group = groups(result["rows"])
    out = {f"{d}/{l}": geomeans(rows, directions) for (d, l), rows in by_group.items()}
    for (d, l), rows in by_group.items():
        out[f"{d}/{l}"]["scratch_worst"] = scratch_worst(rows)
    for (d, l), rows in by_group.items():
        if l == "channels_last" and (d, "nchw") in by_group:
            out[f"{d}/convext_channels_last_vs_native_nchw"] = cross_layout(
                rows, by_group[d, "nchw"], directions)
    for (d, l), rows in groups(result.get("models", [])).items():
        out[f"models/{d}/{l}"] = geomeans(rows, ["train", "infer"])
    return out


def write_json(result, path):
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
