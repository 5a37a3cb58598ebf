"""Local Lipschitz constants on the bundled digits networks, ACAS Xu and mnist_fc: the
upper bound, the sampled lower bound, the naive bound (product of operator norms) and the
exact value where the MILP finishes, with times.

    OMP_NUM_THREADS=1 python benchmarks/lipschitz.py [--timeout S] [--only TEXT] [--json F]

Each case: one ``hybridver.api.lipschitz`` call (L-inf input norm, every output, max) with
the time limit ``S`` (default 60 s) and the default settings (one row: the MILP alone),
over the bounding box of the spec's input region.
Cases whose files are absent (the shared benchmarks folder) are skipped with a line saying
so.  Prints a Markdown table; ``exact`` is marked ``(milp)`` (the MILP's optimum) or ``(bab)``
(branch-and-bound brought the sound upper bound within 1e-6 of an attained gradient norm).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HYBRIDVER_SHARED_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
EX = REPO / "examples"
ACAS = SHARED / "acasxu"
MNIST = SHARED / "mnist_fc_2022"

#: (label, model, spec, LipschitzConfig fields or None; "radius": a box around the centre)
CASES = [
    *((f"digits_{a} {e}", EX / f"digits_{a}.onnx", EX / f"digits_{a}_{e}.vnnlib", None)
      for a in ("relu", "sigmoid", "tanh") for e in ("eps_small_0", "eps_large_2")),
    # the centre of eps_small_1's box +- 0.04 (clipped to [0, 1]), where the MILP finishes:
    # once alone, once after branch-and-bound (the defaults)
    ("digits_relu eps_small_1 centre +-0.04, MILP alone (bab, vertices off)",
     EX / "digits_relu.onnx", EX / "digits_relu_eps_small_1.vnnlib",
     {"bab": False, "vertex_max_varying": 0, "radius": 0.04}),
    ("digits_relu eps_small_1 centre +-0.04", EX / "digits_relu.onnx",
     EX / "digits_relu_eps_small_1.vnnlib", {"radius": 0.04}),
    ("acasxu 1_1 prop_3", ACAS / "ACASXU_run2a_1_1_batch_2000.onnx", ACAS / "prop_3.vnnlib", None),
    ("acasxu 2_1 prop_4", ACAS / "ACASXU_run2a_2_1_batch_2000.onnx", ACAS / "prop_4.vnnlib", None),
    ("acasxu 3_3 prop_1", ACAS / "ACASXU_run2a_3_3_batch_2000.onnx", ACAS / "prop_1.vnnlib", None),
    ("mnist_fc 256x2 prop_0_0.03", MNIST / "onnx" / "mnist-net_256x2.onnx.gz",
     MNIST / "vnnlib" / "prop_0_0.03.vnnlib", None),
]


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.6g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--only", default="", help="run the cases whose label contains TEXT")
    parser.add_argument("--json", help="write every result here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import numpy as np

    from hybridver.api import lipschitz, load_model, load_spec
    from hybridver.lipschitz import LipschitzConfig

    rows, results = [], {}
    for label, model_path, spec_path, fields in CASES:
        if args.only not in label:
            continue
        found = [p for p in (model_path, spec_path) if p.exists() or Path(f"{p}.gz").exists()]
        if len(found) < 2:
            print(f"skipped {label}: files absent", file=sys.stderr)
            continue
        spec_file = spec_path if spec_path.exists() else Path(f"{spec_path}.gz")
        model = load_model(model_path)
        spec = load_spec(spec_file, model)
        fields = dict(fields or {})
        radius = fields.pop("radius", None)
        region = spec
        if radius is not None:  # the box's centre +- radius, clipped to [0, 1]
            box = spec.bounding_box()
            centre = (box.lower + box.upper) / 2
            region = (np.clip(centre - radius, 0, 1), np.clip(centre + radius, 0, 1))
        res = lipschitz(model, region, timeout_s=args.timeout,
                        config=LipschitzConfig(**fields))
        results[label] = res.to_json()
        t = res.times
        source = f" ({res.exact_source})" if res.exact_source else ""
        rows.append(f"| {label} | {_fmt(res.upper)} | {_fmt(res.lower)} | {_fmt(res.naive)} | "
                    f"{_fmt(res.exact)}{source} | {res.boxes} | {t['upper_s']:.1f} | "
                    f"{t['lower_s']:.1f} | {t['exact_s']:.1f} | {res.time_s:.1f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    print("| network, box | upper | lower | naive | exact | boxes | upper (s) | lower (s) "
          "| exact (s) | total (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
