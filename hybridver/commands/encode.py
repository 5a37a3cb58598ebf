"""``hybridver encode MODEL SPEC --format mps|lp|smt2 -o FILE``: export the exact encoding so
any external solver can cross-check a verdict.

One file per (case, disjunct) of the spec: with a single one, ``FILE`` itself; otherwise
``FILE`` with ``.c<case>d<disjunct>`` inserted before the suffix (``q.mps`` ->
``q.c0d0.mps``, ``q.c0d1.mps``, ...).  The property is violated iff some file has a
solution with margin ``t <= 0`` (MPS/LP: minimize ``t``; the optimum ``t* > 0`` means no
counterexample in that disjunct) or is ``sat`` (SMT-LIB).  Cases whose output condition is
``true`` need no solver (every point of their region is a counterexample) and are listed,
not written.  Smooth nonlinearities make a file a relaxation (said in its header).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridver.errors import HybridverInputError

FORMATS = ("mps", "lp", "smt2")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``encode`` on an argparse sub-parsers object."""
    parser = subparsers.add_parser(
        "encode", help="export the MILP (MPS, LP) or SMT-LIB 2 encoding of a property")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("spec", metavar="SPEC")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="output format (default: from the suffix of -o)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="file to write (several files, .c<case>d<disjunct> inserted "
                             "before the suffix, when the property has several disjuncts)")
    parser.add_argument("--bounds", choices=("interval", "lp"), default="interval",
                        help="node bounds for big-M and envelopes: interval arithmetic, or "
                             "interval then LP tightening (HiGHS; smaller big-Ms)")
    parser.add_argument("--envelope-pieces", type=int, default=4, metavar="N",
                        help="linear pieces per side of smooth-function envelopes (MILP)")
    return parser


def output_paths(output: str | Path, keys: list[tuple[int, int]]) -> list[Path]:
    """The file for each ``(case, disjunct)``: ``output`` itself for a single one."""
    output = Path(output)
    if len(keys) == 1:
        return [output]
    return [output.with_name(f"{output.stem}.c{c}d{d}{output.suffix}") for c, d in keys]


def _encode_text(problem, fmt: str, pieces: int) -> tuple[str, bool | None]:
    """The file text and whether it is exact (None: said in the file's header)."""
    from hybridver.encode.affine_form import NotEncodableError

    try:
        if fmt == "smt2":
            try:
                from hybridver.encode.smt import to_smt2
            except ImportError as exc:
                raise HybridverInputError(
                    f"smt2 export is unavailable: hybridver.encode.smt.to_smt2 cannot be "
                    f"imported ({exc})") from None
            return to_smt2(problem), None
        from hybridver.encode.milp import encode_milp, format_lp, format_mps
        model = encode_milp(problem, pieces)
        return (format_mps(model) if fmt == "mps" else format_lp(model)), model.exact
    except NotEncodableError as exc:
        raise HybridverInputError(f"cannot encode {problem.label}: {exc}") from None


def run_encode(args: argparse.Namespace) -> int:
    from hybridver.api import load_model, load_spec
    from hybridver.encode.subproblems import exact_subproblems, subproblem_bounds

    fmt = args.format or Path(args.output).suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise HybridverInputError(f"cannot tell the format from '{args.output}': give "
                                  f"--format {'|'.join(FORMATS)}")
    if args.envelope_pieces < 1:
        raise HybridverInputError("--envelope-pieces must be at least 1")
    for path in (args.model, args.spec):
        if not Path(path).exists():
            raise HybridverInputError(f"file not found: {path}")
    model = load_model(args.model)
    spec = load_spec(args.spec, model)

    def case_bounds(ci, case):
        bounds = subproblem_bounds(model.graph, case.region)
        if args.bounds == "lp":
            from hybridver.backends.lp import lp_tightened_bounds
            from hybridver.problem import Subproblem
            bounds, _ = lp_tightened_bounds(
                Subproblem(model.graph, case.region, case.disjuncts[0], bounds), 600.0,
                args.envelope_pieces)
        return bounds

    problems = list(exact_subproblems(model.graph, spec, case_bounds))
    for ci, case in enumerate(spec.cases):
        if case.output_is_true:
            print(f"case {ci}: output condition is 'true' (any point of its region is a "
                  "counterexample); nothing to encode", file=sys.stderr)
    if not problems:
        print("nothing to encode", file=sys.stderr)
        return 0
    paths = output_paths(args.output, [(ci, di) for ci, di, _ in problems])
    for (ci, di, problem), path in zip(problems, paths):
        text, exact = _encode_text(problem, fmt, args.envelope_pieces)
        path.write_text(text)
        kind = {True: "exact", False: "relaxation (smooth envelopes)",
                None: "see its header"}[exact]
        print(f"case {ci} disjunct {di}: {kind}", file=sys.stderr)
        print(path)
    return 0
