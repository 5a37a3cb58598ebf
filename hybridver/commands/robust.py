"""``hybridver robust MODEL --point X.npy --label L --family F ...``: manipulation families.

The verdict word is the last stdout line (``unsat``: no manipulation of the families
changes the class; ``sat``: one does, and the real model confirmed it).  A line on stderr
says how it was settled.  ``--json F`` writes
:meth:`~hybridver.manipulations.RobustResult.to_json` with the model and point in front;
``--save-cex F.png`` writes the misclassified image (sat only).  See docs/manipulations.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hybridver.errors import HybridverInputError


def _pair(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), got {text!r}") from None
    return lo, hi


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW or CxHxW, got {text!r}") from None
    if len(dims) not in (2, 3) or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW or CxHxW, got {text!r}")
    return dims


def add_parser(subparsers, backends: list[str]) -> argparse.ArgumentParser:
    """Register ``robust`` on an argparse sub-parser collection (``backends``: the exact
    back ends' names, for ``--backend``)."""
    from hybridver.commands.settings import add_run_options, positive_int
    from hybridver.progress import MODES as PROGRESS_MODES

    parser = subparsers.add_parser(
        "robust", help="safety of a classification under manipulation families "
                       "(brightness, contrast, patches, occlusion, L1/L2 changes)")
    parser.add_argument("model", metavar="MODEL", help="ONNX classifier")
    parser.add_argument("--point", metavar="X.npy", required=True,
                        help="the input (numpy .npy, any shape with the model's input size)")
    parser.add_argument("--label", type=int, metavar="L", required=True,
                        help="its class; a counterexample is a manipulation that some other "
                             "class scores at least as high as")
    parser.add_argument("--family", action="append", metavar="F", required=True,
                        help="brightness=D, contrast=D, patch=HxW@ROW,COL:D, "
                             "occlude=HxW@ROW,COL, linf=E, l1=E, l2=E, or F1>F2 (F1 then "
                             "F2); repeated options are summed")
    parser.add_argument("--clip", type=_pair, metavar="LO,HI",
                        help="clip the manipulated image to [LO, HI] (also the pixel range "
                             "of occlusion, the grid and PNGs; default range 0,1, no clip)")
    parser.add_argument("--grid", type=positive_int, metavar="N",
                        help="decide over images whose pixels are multiples of "
                             "(HI-LO)/N (255: 8-bit); the point must be one")
    parser.add_argument("--image-shape", type=_shape, metavar="HxW",
                        help="image shape (HxW or CxHxW) when the input shape does not say it")
    parser.add_argument("--json", metavar="F", help="JSON report to write")
    parser.add_argument("--save-cex", metavar="F.png",
                        help="write the misclassified image as PNG (sat only)")
    add_run_options(parser, backends)
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="live progress line on stderr: auto, on, off")
    return parser


def _load_point(path: str):
    import numpy as np

    from hybridver.specs.instances import existing_file

    path = existing_file(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise HybridverInputError(f"cannot read {path} as a .npy array: {exc}") from None


def run_robust(args: argparse.Namespace) -> int:
    from hybridver.api import load_model, verify_robust
    from hybridver.commands.settings import (apply_process_settings, config_from_args,
                                             spec_warnings)
    from hybridver.commands.verify import _started
    from hybridver.manipulations import image_layout, write_png
    from hybridver.progress import make_progress
    from hybridver.specs.instances import existing_file
    from hybridver.version import __version__

    config = config_from_args(args)
    apply_process_settings(config)
    point = _load_point(args.point)
    started = _started(args, config.timeout_s)
    model = load_model(existing_file(args.model))
    layout = None
    if args.save_cex:
        layout = image_layout(model.graph.input_node.shape, args.image_shape)
    with spec_warnings(getattr(args, "strict", False)):
        with make_progress(getattr(args, "progress", "auto")) as progress:
            deadline = None if started is None else started + config.timeout_s
            result = verify_robust(model, point, args.label, args.family, clip=args.clip,
                                   grid=args.grid, image_shape=args.image_shape,
                                   config=config, progress=progress, deadline=deadline)
    if args.json:
        report = {"hybridver": __version__, "model": str(args.model),
                  "point": str(args.point), **result.to_json()}
        _write(args.json, json.dumps(report, indent=2, allow_nan=False) + "\n")
    spec = result.spec
    detail = f"{result.method}"
    if result.engine is not None:
        detail += f", {result.engine.time_s:.2f}s"
    if result.message:
        detail += f"; {result.message}"
    if result.image is not None:
        params = ", ".join(f"{name}={v:.4g}" for name, v in
                           zip(spec.amap.labels[:4], result.params[:4]))
        more = " ..." if spec.n_params > 4 else ""
        detail += (f"; classified {result.predicted} instead of {spec.label} "
                   f"({params}{more})")
        if args.save_cex:
            lo, hi = spec.pixel_range
            img = result.image.reshape(layout.channels, layout.height, layout.width)
            scale = max(1, 128 // max(layout.height, layout.width))
            try:
                write_png(args.save_cex, img, lo, hi, scale)
            except OSError as exc:
                raise HybridverInputError(f"cannot write {args.save_cex}: "
                                          f"{exc.strerror}") from None
            detail += f"; image written to {args.save_cex}"
    print(f"{Path(args.model).name} {', '.join(spec.families)}: {detail}", file=sys.stderr)
    print(result.verdict.value)
    return 0


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise HybridverInputError(f"cannot write {path}: {exc.strerror}") from None
