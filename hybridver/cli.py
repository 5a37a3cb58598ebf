"""Command line: ``hybridver info | verify | bounds | encode | run-instances``.

Exit codes: 0 for any verdict, 2 for bad input (one readable line on stderr), 1 for an
internal error (one line; the traceback only with ``HYBRIDVER_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

#: when the command started (before torch and the solvers are imported): ``--timeout``
#: counts from here, so the whole process answers within it
STARTED = time.monotonic()

from hybridver.commands.settings import add_run_options, positive_float, positive_int
from hybridver.errors import HybridverInputError
from hybridver.progress import MODES as PROGRESS_MODES
from hybridver.version import __version__


def _backend_names() -> list[str]:
    # read from the back ends' sources: importing them would load torch (and --help must not)
    from hybridver.backends import declared_backend_names
    return declared_backend_names()


class _HelpFormatter(argparse.HelpFormatter):
    """Each option's help ends with its default: ``(default: X)`` added from the option's
    default value, unless the text already names it (options that default to None, so that
    a config file's value stands, write the built-in default themselves)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("(default" in text or not action.option_strings or action.default is None
                or action.default is False or action.default == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as bad input (exit 2) in our one-line style, and
    shows every option's default in the help."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise HybridverInputError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; building it imports no heavy module (torch, numpy,
    onnx, the solvers): the commands import what they need when they run."""
    parser = _Parser(prog="hybridver", description="Neural-network verifier.")
    parser.add_argument("--version", action="version", version=f"hybridver {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    info = sub.add_parser("info", help="ops, shapes and parameters of models")
    info.add_argument("models", nargs="+", metavar="MODEL", help="ONNX models")
    info.add_argument("--check", type=positive_int, metavar="N",
                      help="compare the IR with onnxruntime on N random inputs (in [-1, 1], "
                           "or in --spec's input region)")
    info.add_argument("--spec", metavar="SPEC",
                      help="VNN-LIB property whose input region --check samples (applies "
                           "to every MODEL)")
    info.add_argument("--seed", type=int, default=0, help="seed of the random inputs of --check")

    verify = sub.add_parser("verify", help="verify a VNN-LIB property of an ONNX model")
    verify.add_argument("model", metavar="MODEL", help="ONNX model (.onnx, or its .onnx.gz)")
    verify.add_argument("spec", metavar="SPEC", help="VNN-LIB property (.vnnlib, or its .gz)")
    verify.add_argument("--results-file", metavar="F", help="VNN-COMP results file to write")
    verify.add_argument("--json", metavar="F", help="JSON report to write")
    add_run_options(verify, _backend_names())
    verify.add_argument("--decision-log", action="store_true", default=None,
                        help="keep the scheduler's decision log (its first 200 records) in "
                             "the JSON report's stats.scheduler (default: off)")
    verify.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="live progress line on stderr: auto (when stderr is a "
                             "terminal), on, off")

    from hybridver.commands import bounds, encode
    bounds.add_parser(sub)
    encode.add_parser(sub)
    from hybridver.commands import plant as plant_command
    plant_command.add_parser(sub)

    run = sub.add_parser("run-instances", help="run a VNN-COMP instances.csv")
    run.add_argument("csv", metavar="CSV")
    run.add_argument("--root", metavar="DIR", help="folder the CSV's paths are relative to")
    run.add_argument("--output", metavar="F", default="run_results.csv",
                     help="CSV of results to write (default: run_results.csv)")
    run.add_argument("--timeout-cap", type=positive_float, metavar="S",
                     help="cap each instance's timeout at S seconds")
    run.add_argument("--limit", type=positive_int, metavar="N", help="run the first N only")
    run.add_argument("--resume", action="store_true", help="keep the finished rows of --output "
                     "(after a crash) and run only the other instances")
    add_run_options(run, _backend_names(), timeout=False)
    run.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                     help="live line per running instance on stderr: auto (when stderr is a "
                          "terminal), on, off")
    from hybridver.commands import crosscheck
    crosscheck.add_parser(sub)
    from hybridver.commands import lipschitz as lipschitz_command  # issue 15, part 1
    lipschitz_command.add_parser(sub).set_defaults(run=lipschitz_command.run_lipschitz)
    from hybridver.commands import robust as robust_command
    robust_command.add_parser(sub, _backend_names()).set_defaults(run=robust_command.run_robust)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.started = STARTED if argv is None else time.monotonic()
        if args.command == "info":
            from hybridver.commands.info import run_info
            return run_info(args.models, args.check, args.seed, args.spec)
        if args.command == "verify":
            from hybridver.commands.verify import run_verify
            return run_verify(args)
        if args.command == "bounds":
            from hybridver.commands.bounds import run_bounds
            return run_bounds(args)
        if args.command == "encode":
            from hybridver.commands.encode import run_encode
            return run_encode(args)
        if args.command == "plant":
            from hybridver.commands.plant import run_plant
            return run_plant(args)
        if args.command == "run-instances":
            from hybridver.commands.run_instances import run_instances
            return run_instances(args)
        if args.command == "crosscheck":
            from hybridver.commands.crosscheck import run_crosscheck_command
            return run_crosscheck_command(args)
        if getattr(args, "run", None) is not None:  # commands that name their own runner
            return args.run(args)
        raise HybridverInputError(f"unknown command {args.command}")
    except HybridverInputError as exc:
        print(f"hybridver: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hybridver: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place internal errors are reported
        if os.environ.get("HYBRIDVER_DEBUG"):
            traceback.print_exc()
        print(f"hybridver: internal error: {type(exc).__name__}: {exc} "
              "(set HYBRIDVER_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
