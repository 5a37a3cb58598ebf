"""``hybridver plant OUT_DIR``: generate a benchmark with hidden counterexamples.

Arguments over :func:`hybridver.soundness.plant.plant_benchmark`; the layout of what it
writes is in :mod:`hybridver.soundness.plant_write`.  Prints one line per kept model and a
summary; exit 0 when at least one model was kept, 1 when none was.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from hybridver.commands.settings import int_at_least, positive_float, positive_int
from hybridver.progress import MODES as PROGRESS_MODES
from hybridver.soundness.plant_archs import ARCHITECTURE_NAMES, DEFAULT_ARCHITECTURES


def _count(text: str) -> int:
    return int_at_least(text, 0)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``plant`` on an argparse sub-parser collection."""
    parser = subparsers.add_parser(
        "plant", help="generate a benchmark with hidden (planted) counterexamples")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the benchmark to")
    parser.add_argument("--arch", action="append", metavar="NAME",
                        help="architecture, repeatable: " + ", ".join(ARCHITECTURE_NAMES)
                             + f" (default: {' '.join(DEFAULT_ARCHITECTURES)})")
    parser.add_argument("--input-dim", type=positive_int, default=16, metavar="N",
                        help="input entries of every model (images: H x W with H*W = N)")
    parser.add_argument("--classes", type=positive_int, default=3, metavar="K",
                        help="output classes")
    parser.add_argument("--eps", type=positive_float, default=0.1,
                        help="L_inf radius of every box (points lie in [-1, 1]^N)")
    parser.add_argument("--planted", type=_count, default=3, metavar="N",
                        help="instances with a hidden counterexample per model")
    parser.add_argument("--clean", type=_count, default=2, metavar="N",
                        help="instances without a planted counterexample per model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole run")
    parser.add_argument("--epochs", type=positive_int, default=200, help="training epochs")
    parser.add_argument("--timeout", type=positive_float, default=60.0, metavar="S",
                        help="timeout of every instance, written into the CSV files")
    parser.add_argument("--sealed", metavar="PATH",
                        help="witness file, outside OUT_DIR (default: OUT_DIR-sealed/"
                             "witnesses.json)")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="live progress line on stderr while training: auto (when "
                             "stderr is a terminal), on, off")
    parser.add_argument("--no-branch", dest="branch", action="store_false",
                        help="no side branch of vertex bumps: the plain network must learn "
                             "the counterexample (the check attack then usually finds it, "
                             "and the model is left out)")
    parser.add_argument("--force", action="store_true",
                        help="replace OUT_DIR when it exists and is not empty")
    return parser


def run_plant(args: argparse.Namespace) -> int:
    from hybridver.progress import make_progress
    from hybridver.soundness.plant import PlantSettings, check_settings, plant_benchmark

    base = PlantSettings()
    settings = PlantSettings(
        archs=tuple(args.arch) if args.arch else DEFAULT_ARCHITECTURES,
        input_dim=args.input_dim, n_classes=args.classes, eps=args.eps,
        planted=args.planted, clean=args.clean, seed=args.seed, timeout_s=args.timeout,
        branch=args.branch,
        train=dataclasses.replace(base.train, epochs=args.epochs))
    check_settings(settings)
    with make_progress(args.progress, label="plant") as progress:
        summary = plant_benchmark(args.out_dir, settings, sealed=args.sealed,
                                  force=args.force, progress=progress)
    for name in summary.failed_models:
        print(f"hybridver: warning: model {name} was left out: no try passed the checks "
              "(see plant_report.json)", file=sys.stderr)
    print(f"{summary.out_dir}: {summary.models} models, {summary.planted} planted and "
          f"{summary.clean} clean instances in {summary.time_s:.1f}s; witnesses in "
          f"{summary.sealed}")
    return 0 if summary.models else 1
