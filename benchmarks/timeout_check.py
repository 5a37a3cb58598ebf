"""Does ``hybridver verify`` answer within its ``--timeout``?  One hard instance per group.

    python benchmarks/timeout_check.py [--timeout 20] [--groups cgan_2023,vit_2023,...]

For each group of ``../shared/benchmarks`` the script runs ``hybridver verify MODEL SPEC
--timeout T`` as a child process on the instance named in ``INSTANCES`` (the largest
network of the group, where a run is most likely to use its whole time), measures the
wall time of the whole process (interpreter start, imports and loading included) and
prints a table: verdict, wall time, overshoot past T, and whether it is within the
target ``T * 1.02 + 1 s``.  Groups absent from ``../shared/benchmarks`` are skipped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "benchmarks"

#: group -> (onnx, vnnlib) relative to the group's folder (read as .gz where needed)
INSTANCES = {
    "acasxu": ("ACASXU_run2a_3_3_batch_2000.onnx", "prop_2.vnnlib"),
    "cgan_2023": ("onnx/cGAN_imgSz32_nCh_3_upsample.onnx",
                  "vnnlib/cGAN_imgSz32_nCh_3_upsample_prop_0_input_eps_0.010_output_eps_0.015"
                  ".vnnlib"),
    "dist_shift_2023": ("onnx/mnist_concat.onnx", "vnnlib/index4462_delta0.13.vnnlib"),
    "lsnc_2024": ("onnx/quadrotor2d_output.onnx", "vnnlib/quadrotor2d_output_0.vnnlib"),
    "ml4acopf_2023": ("onnx/300_ieee_ml4acopf.onnx", "vnnlib/300_ieee_prop3.vnnlib"),
    "mnist_fc_2022": ("onnx/mnist-net_256x6.onnx", "vnnlib/prop_1_0.03.vnnlib"),
    "nn4sys_2023": ("onnx/mscn_128d.onnx", "vnnlib/cardinality_0_1000_128.vnnlib"),
    "vit_2023": ("onnx/pgd_2_3_16.onnx", "vnnlib/pgd_2_3_16_4021.vnnlib"),
    "vnncomp_test": ("test_small.onnx", "test_small.vnnlib"),
}


def _existing(path: Path) -> Path | None:
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def _fallback(group: str) -> tuple[str, str] | None:
    """The group's first listed instance whose files are here, when the named one is
    absent."""
    for name in ("instances.csv", "acasxu_instances.csv", "test_instances.csv"):
        csv = SHARED / group / name
        if csv.exists():
            for row in (r.split(",") for r in csv.read_text().splitlines() if r.strip()):
                if all(_existing(SHARED / group / n) for n in row[:2]):
                    return row[0], row[1]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--groups", help="comma-separated subset of the groups")
    args = parser.parse_args()
    groups = args.groups.split(",") if args.groups else list(INSTANCES)
    limit = args.timeout * 1.02 + 1.0
    print(f"{'group':<16} {'instance':<58} {'verdict':<8} {'wall_s':>7} {'over_s':>7}  "
          f"within {limit:.1f} s")
    worst = 0.0
    for group in groups:
        if not (SHARED / group).exists():
            print(f"{group:<16} (absent)")
            continue
        names = INSTANCES.get(group)
        paths = [_existing(SHARED / group / n) for n in names] if names else [None, None]
        if None in paths:
            names = _fallback(group)
            paths = [_existing(SHARED / group / n) for n in names] if names else [None]
        if None in paths:
            print(f"{group:<16} (instance files absent)")
            continue
        onnx, vnnlib = paths
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "hybridver.cli", "verify", str(onnx),
                               str(vnnlib), "--timeout", str(args.timeout), "--progress",
                               "off"], capture_output=True, text=True, cwd=REPO)
        wall = time.monotonic() - t0
        lines = proc.stdout.strip().splitlines()
        verdict = lines[-1] if proc.returncode == 0 and lines else f"exit{proc.returncode}"
        over = wall - args.timeout
        worst = max(worst, wall - limit)
        name = f"{onnx.name} {vnnlib.name}"[:58]
        print(f"{group:<16} {name:<58} {verdict:<8} {wall:>7.2f} {over:>7.2f}  "
              f"{'yes' if wall <= limit else 'NO'}", flush=True)
        if proc.returncode != 0:
            print(f"  {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")
    return 0 if worst <= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
