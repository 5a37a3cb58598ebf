"""The run options shared by ``verify`` and ``run-instances``, and the settings tree
they make: the config file's (``--config``), with each flag given on the command line
on top of it.  The flags default to None so that a file's value stands unless a flag is
given; the help texts name the built-in defaults (:mod:`hybridver.defaults`, which the
config tree uses too)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import warnings
from collections.abc import Iterator

from hybridver import defaults
from hybridver.errors import HybridverInputError, VacuousSpecWarning


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def int_at_least(text: str, least: int) -> int:
    """``text`` as an integer ``>= least``, or the argparse error saying why not."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}: {text!r}")
    return value


def positive_int(text: str) -> int:
    return int_at_least(text, 1)



def add_run_options(parser: argparse.ArgumentParser, backends: list[str],
                    timeout: bool = True) -> None:
    """``--config --mode --backend --device --workers --threads`` (and ``--timeout``)."""
    if timeout:
        parser.add_argument("--timeout", type=positive_float, metavar="S",
                            help=f"time limit in seconds, loading included "
                                 f"(default: {defaults.TIMEOUT_S:g})")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="settings file, TOML (README, Command line); flags given here "
                             "override it")
    parser.add_argument("--mode", choices=defaults.MODES,
                        help=f"hybrid: the staged pipeline; exact: one exact back end "
                             f"(default: {defaults.MODE})")
    parser.add_argument("--backend", choices=backends,
                        help=f"exact back end for --mode exact (default: "
                             f"{defaults.EXACT_BACKEND})")
    parser.add_argument("--device", metavar="DEV",
                        help=f"torch device of the bound computations, e.g. cpu, cuda, "
                             f"cuda:1 (default: {defaults.DEVICE})")
    parser.add_argument("--workers", type=positive_int, metavar="N",
                        help=f"worker processes for exact back ends beside branch-and-bound "
                             f"(default: {defaults.HANDOFF_WORKERS} for hand-offs, "
                             f"{defaults.REGION_RACE_WORKERS} for region races)")
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help="torch threads of this process (default: torch's choice)")
    parser.add_argument("--crosscheck", action="store_true", default=None,
                        help="decide every unsat again with an independent exact back end "
                             "on networks small enough; a disagreement is reported as "
                             "error (exit code 3 for verify), never as a verdict "
                             "(settings: [self_check] in --config)")
    parser.add_argument("--crosscheck-timeout", type=positive_float, metavar="S",
                        help="time limit of that second decision, after the run's "
                             "(default: 60)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run on a Ray cluster: HOST:PORT of its head (`ray start "
                             "--head` prints it) or auto; needs the [ray] extra "
                             "(settings: [cluster] in --config; default: this machine)")
    parser.add_argument("--strict", action="store_true",
                        help="refuse a vacuous spec (empty input region, or a case without "
                             "output constraint) instead of warning (default: warn)")


def config_from_args(args: argparse.Namespace, timeout_s: float | None = None):
    """The :class:`~hybridver.config.VerifyConfig` of ``args`` (``timeout_s`` replaces
    ``--timeout`` when given, for run-instances' per-instance limits)."""
    from hybridver.config import Mode, VerifyConfig
    from hybridver.config_file import load_config

    config = load_config(args.config) if getattr(args, "config", None) else VerifyConfig()
    changes: dict = {}
    timeout = timeout_s if timeout_s is not None else getattr(args, "timeout", None)
    if timeout is not None:
        changes["timeout_s"] = float(timeout)
    if args.mode is not None:
        changes["mode"] = Mode(args.mode)
    if args.device is not None:
        changes["device"] = args.device
    if args.threads is not None:
        changes["threads"] = args.threads
    if args.backend is not None:
        changes["exact"] = dataclasses.replace(config.exact, backend=args.backend)
    if getattr(args, "decision_log", None):
        changes["decision_log"] = True
    if getattr(args, "crosscheck", None) or getattr(args, "crosscheck_timeout", None):
        check = dataclasses.replace(config.self_check, enabled=True)
        if getattr(args, "crosscheck_timeout", None):
            check = dataclasses.replace(check, timeout_s=float(args.crosscheck_timeout))
        changes["self_check"] = check
    if getattr(args, "cluster", None):
        changes["cluster"] = dataclasses.replace(config.cluster, address=args.cluster)
    config = dataclasses.replace(config, **changes)
    if args.workers is not None:
        config = config.with_workers(args.workers)
    return config


@contextlib.contextmanager
def spec_warnings(strict: bool) -> Iterator[None]:
    """Inside: a :class:`VacuousSpecWarning` is printed once as one line on stderr
    (``hybridver: warning: ...``), or, with ``strict``, refused as bad input."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error" if strict else "always", VacuousSpecWarning)
        try:
            yield
        except VacuousSpecWarning as exc:
            raise HybridverInputError(f"{exc} (refused under --strict)") from None
    seen = set()
    for item in caught:
        if issubclass(item.category, VacuousSpecWarning) and str(item.message) not in seen:
            seen.add(str(item.message))
            print(f"hybridver: warning: {item.message}", file=sys.stderr)
        elif not issubclass(item.category, VacuousSpecWarning):
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)


def check_device(name: str) -> None:
    """A clear input error for a torch device this process cannot use (an unknown name,
    or CUDA/MPS on a build or machine without it), instead of torch's internal error."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise HybridverInputError(f"unknown device '{name}' (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise HybridverInputError(f"device '{name}' is not available: this torch build "
                                      "has no CUDA, or no GPU is visible")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise HybridverInputError(f"device '{name}' is not available: "
                                      f"{torch.cuda.device_count()} GPU(s) visible")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise HybridverInputError(f"device '{name}' is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise HybridverInputError(f"device '{name}' is not supported (cpu, cuda, mps)")


def apply_process_settings(config) -> None:
    """Process-wide settings of a run: the device is checked, torch's thread count set."""
    check_device(config.device)
    if config.threads is not None:
        import torch
        torch.set_num_threads(config.threads)
