"""``hybridver lipschitz MODEL SPEC``: bounds of the local Lipschitz constant over the
spec's input box (the smallest box containing every case's region).

Printed: ``upper``, ``lower``, ``exact`` (``-`` when the MILP is not run or does not
finish), ``naive``, the time.  JSON (``--json F``): :meth:`LipschitzResult.to_json`, with
the keys ``upper lower exact norm time_s naive`` and ``model``, ``spec``, ``rows`` (which
functions: ``"outputs"``, ``"output K"``, ``"margin I,J"``); non-finite numbers are written
as the strings ``"inf"``/``"nan"``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from hybridver.commands.settings import positive_float
from hybridver.errors import HybridverInputError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``lipschitz`` on an argparse sub-parser collection."""
    parser = subparsers.add_parser(
        "lipschitz", help="bounds of the local Lipschitz constant over a spec's input box")
    parser.add_argument("model", metavar="MODEL", help="ONNX model")
    parser.add_argument("spec", metavar="SPEC", help="VNN-LIB property (its input box)")
    parser.add_argument("--norm", choices=["inf", "2", "1"], default="inf",
                        help="norm of input differences (the gradient's dual norm is "
                             "bounded: inf -> L1, 2 -> L2, 1 -> L-inf)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--output", type=int, metavar="K",
                       help="the constant of output K alone (default: every output, max)")
    which.add_argument("--margin", metavar="I,J", help="the constant of y_I - y_J")
    parser.add_argument("--json", metavar="F", help="JSON report to write")
    parser.add_argument("--timeout", type=positive_float, default=60.0, metavar="S",
                        help="time limit of the computation in seconds (loading excluded)")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="settings file; its [lipschitz] table is used")
    return parser


def parse_margin(text: str | None) -> tuple[int, int] | None:
    """``"I,J"`` as two integers, or the bad-input error."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return int(parts[0]), int(parts[1])
    except ValueError:
        raise HybridverInputError(f"--margin must be two output indices I,J, not {text!r}") \
            from None


def _number(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else "-inf" if x < 0 else "nan"
    return x


def run_lipschitz(args: argparse.Namespace) -> int:
    from hybridver.api import lipschitz, load_model, load_spec
    from hybridver.lipschitz import LipschitzConfig

    margin = parse_margin(args.margin)
    for path in (args.model, args.spec):
        if not Path(path).exists():
            raise HybridverInputError(f"file not found: {path}")
    config = LipschitzConfig()
    if args.config:
        from hybridver.config_file import load_config
        config = load_config(args.config).lipschitz
    model = load_model(args.model)
    spec = load_spec(args.spec, model)
    result = lipschitz(model, spec, norm=args.norm, output=args.output, margin=margin,
                       config=config, timeout_s=args.timeout)
    exact = "-" if result.exact is None else f"{result.exact:.9g}"
    print(f"upper  {result.upper:.9g}")
    print(f"lower  {result.lower:.9g}")
    print(f"exact  {exact}")
    print(f"naive  {result.naive:.9g}")
    print(f"time   {result.time_s:.2f}s (norm {result.norm}, {result.boxes} boxes)")
    if args.json:
        rows = ("outputs" if args.output is None and margin is None else
                f"output {args.output}" if margin is None else f"margin {margin[0]},{margin[1]}")
        report = {"model": str(args.model), "spec": str(args.spec), "rows": rows,
                  **{k: _number(v) for k, v in result.to_json().items()}}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
