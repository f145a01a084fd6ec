"""python -m convext.explain "Conv1d(3, 2, kernel_size=3, padding=1)" --input 2,3,4

Explains one layer, or a chain of layers separated by ';', on an input
shape. Layers are torch.nn conv, pooling and element-wise constructors with
literal arguments (parsed with ast, never evaluated). Exit status 1 when
the configuration is impossible (the report says why and how to fix it)."""
import argparse
import json
import sys

from torch import nn

from . import build, diagnose, explain


def _ints(text):
    try:
        return tuple(int(v) for v in text.replace("(", "").replace(")", "").split(",")
                     if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, "
                                         f"got {text!r}") from None


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m convext.explain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help='layer constructor(s), e.g. "Conv1d(3, 8, 5); MaxPool1d(2)"')
    p.add_argument("--input", required=True, type=_ints, metavar="N,C,L",
                   help="input shape, batched or not (e.g. 2,3,4 or 3,32,32)")
    p.add_argument("--draw", nargs="?", const="", default=None, type=str, metavar="INDEX",
                   help="draw the input cells one output reads (default output 0; "
                        "2D: H,W)")
    p.add_argument("--layer", metavar="INDEX", type=int, default=None,
                   help="with --draw/--png: ask about this layer's output instead of the "
                        "model's (when the model ends in a layer of unknown geometry)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--png", metavar="FILE", help="save a picture (needs matplotlib)")
    args = p.parse_args(argv)

    try:
        parts = build.parse_spec(args.spec)
    except build.SpecError as exc:
        print(f"convext.explain: {exc}", file=sys.stderr)
        return 2
    layers = []
    for source, cls, a, kw in parts:
        try:
            layers.append(cls(*a, **kw))
        except Exception as exc:  # noqa: BLE001 (explained, never a traceback)
            print(f"torch cannot build {source}\n  torch says  {type(exc).__name__}: {exc}")
            problem = diagnose.constructor(str(exc))
            if problem:
                for line in problem.arithmetic:
                    print(f"  why         {line}")
                print(f"  fix         {', '.join(problem.fixes)}")
            return 1
    model = layers[0] if len(layers) == 1 else nn.Sequential(*layers)
    e = explain(model, args.input)
    e.title = args.spec.strip()
    if args.json:
        data = e.to_dict()
        if args.draw is not None and e.error is None:
            index = _index(args.draw)
            data["draw"] = _try(lambda: {"index": index, "region": e.inputs_of(
                _default(e, index, args.layer), args.layer).to_dict()})
        print(json.dumps(data, indent=2))
    else:
        print(e)
    if e.error is not None:
        return 1
    if args.draw is not None and not args.json:
        print()
        print(_try(lambda: e.draw(_index(args.draw), args.layer)))
    if args.png:
        print(_try(lambda: f"saved {e.save_png(args.png, _index(args.draw or ''), args.layer)}"),
              file=sys.stderr if args.json else sys.stdout)
    return 0


def _index(text):
    if not text:
        return None
    vals = _ints(text)
    return vals[0] if len(vals) == 1 else vals


def _default(e, index, layer):
    from .draw import _default
    return _default(e, index, layer)


def _try(fn):
    try:
        return fn()
    except (ValueError, IndexError, KeyError, RuntimeError) as exc:
        return str(exc)


if __name__ == "__main__":
    sys.exit(main())
