#!/usr/bin/env python
"""Train a certified network on the sklearn digits with IBP / CROWN-IBP, then verify it.

Run from the repository root:  python examples/certified_training.py  [--help]

1. Loads scikit-learn's bundled 8x8 digits (pixels / 16 in [0, 1]; the split of
   make_examples.py: ``test_size=0.2, stratify=y, random_state=0``).
2. Trains an MLP (64-32-32-10 ReLU by default, the architecture of
   examples/digits_relu.onnx) with the loss of Zhang et al. (ICLR 2020): ``kappa *
   CE(f(x), y) + (1 - kappa) * CE(-lb, y)``, where ``lb`` are lower bounds of the margins
   ``y_label - y_j`` over the L-inf ball of radius ``eps``, ``lb = beta * CROWN-IBP +
   (1 - beta) * IBP`` (``--method crown-ibp``) or IBP alone (``--method ibp``), from
   :func:`hybridver.bounds.for_training`; ``eps`` ramps up from 0, ``kappa`` goes from 1 to
   ``--kappa-end`` and ``beta`` from 1 to 0 over the ramp.  A network of the same
   architecture is trained naturally (plain CE) for comparison (``--no-natural``: skip).
3. Exports each network to ONNX (Gemm + Relu, checked with onnxruntime), writes VNN-LIB
   robustness properties for the first ``--n-verify`` test images (the ball clipped to
   [0, 1]) and verifies them with ``hybridver.verify_files``.
4. Prints clean accuracy (whole test split), the certified accuracy BY THE VERIFIER
   (``unsat`` and correctly classified, over the verified images), the share the training
   bounds alone certify (CROWN, float32: an estimate, not a proof) and the times.

``--json F`` writes the numbers.  Defaults run in under two minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_examples as mk  # noqa: E402  (the ONNX and VNN-LIB writers of the examples)

import hybridver  # noqa: E402
from hybridver.bounds import TrainingBoundConfig, for_training  # noqa: E402
from hybridver.config import VerifyConfig  # noqa: E402

N_CLASSES = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", choices=["crown-ibp", "ibp"], default="crown-ibp")
    p.add_argument("--eps", type=float, default=0.1, help="L-inf radius verified (default 0.1)")
    p.add_argument("--train-eps", type=float, default=None,
                   help="radius trained for (default 1.2 * eps)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--warmup", type=int, default=None,
                   help="natural epochs first (default epochs/10)")
    p.add_argument("--ramp", type=int, default=None,
                   help="epochs of the eps ramp (default epochs/2)")
    p.add_argument("--kappa-end", type=float, default=0.0)
    p.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--n-verify", type=int, default=50, help="test images verified per network")
    p.add_argument("--timeout", type=float, default=10.0, help="verifier time limit per image (s)")
    p.add_argument("--no-natural", action="store_true", help="skip the naturally trained network")
    p.add_argument("--no-certified", action="store_true", help="only the natural network")
    p.add_argument("--out", type=Path, default=None, help="folder for the ONNX and VNN-LIB files")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load_data():
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, digits.target, test_size=0.2,
                                          stratify=digits.target, random_state=0)
    return (torch.tensor(Xtr), torch.tensor(ytr, dtype=torch.long),
            torch.tensor(Xte), torch.tensor(yte, dtype=torch.long))


def make_net(hidden: list[int], seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    width = 64
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, N_CLASSES))


def margin_spec(y: torch.Tensor) -> torch.Tensor:
    """``C (B, 10, 10)``: row j is ``e_y - e_j`` (row y is zero)."""
    eye = torch.eye(N_CLASSES)
    return eye[y][:, None, :] - eye[None]


def robust_loss(lb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the worst-case logits ``-lb`` (the label's own entry is 0)."""
    return F.cross_entropy(-lb, y)


def schedule(epoch: int, step: float, args) -> tuple[float, float, float]:
    """(eps, kappa, beta) at ``epoch + step`` (step in [0, 1) within the epoch)."""
    t = (epoch + step - args.warmup) / max(1, args.ramp)
    t = min(1.0, max(0.0, t))
    return t * args.train_eps, 1.0 - t * (1.0 - args.kappa_end), 1.0 - t


def train(net, Xtr, ytr, args, certified: bool) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    config = TrainingBoundConfig(bound_upper=False, intersect_ibp=False)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        if epoch == int(0.75 * args.epochs):
            for group in opt.param_groups:
                group["lr"] *= 0.2
        perm = torch.randperm(len(Xtr), generator=gen)
        n_batches = -(-len(Xtr) // args.batch)
        for k in range(n_batches):
            idx = perm[k * args.batch:(k + 1) * args.batch]
            x, y = Xtr[idx], ytr[idx]
            eps, kappa, beta = schedule(epoch, k / n_batches, args) if certified else (0, 1, 0)
            loss = F.cross_entropy(net(x), y)
            if certified and eps > 0:
                C = margin_spec(y)
                method = "crown-ibp" if args.method == "crown-ibp" and beta > 0 else "ibp"
                b = for_training(net, x, eps, method, C, clip=(0.0, 1.0), config=config)
                lb = beta * b.lower + (1 - beta) * b.ibp_lower if method == "crown-ibp" \
                    else b.ibp_lower
                loss = kappa * loss + (1 - kappa) * robust_loss(lb, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def export(net, path: Path, name: str) -> None:
    layers = mk.layers_of(net)
    mk.write_onnx(layers, "Relu", 64, N_CLASSES, path, name)
    x = np.random.default_rng(0).uniform(0, 1, size=(16, 64)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.tensor(x)).numpy()
    diff = np.abs(mk.ort_run(mk.ort_session(path), x) - ref).max()
    assert diff < 1e-4, f"ONNX export of {name} differs from torch by {diff}"


def verify(net, name: str, Xte, yte, args, out: Path) -> dict:
    """Clean accuracy, verifier verdicts and the training bounds' estimate for one net."""
    net.eval()
    with torch.no_grad():
        clean = float((net(Xte).argmax(1) == yte).float().mean())
    onnx_path = out / f"{name}.onnx"
    export(net, onnx_path, name)
    n = min(args.n_verify, len(Xte))
    x, y = Xte[:n], yte[:n]
    with torch.no_grad():
        predicted = net(x).argmax(1) == y
        b = for_training(net, x, args.eps, "crown", margin_spec(y), clip=(0.0, 1.0),
                         config=TrainingBoundConfig(bound_upper=False))
        rows = b.lower.masked_fill(torch.eye(N_CLASSES, dtype=torch.bool)[y], np.inf)
        worst = rows.min(1).values
        bound_certified = (worst > 0) & predicted
    verdicts: list[str] = []
    t0 = time.perf_counter()
    config = VerifyConfig(timeout_s=args.timeout)
    for i in range(n):
        lb, ub = mk.linf_box(x[i].numpy(), args.eps)
        spec = out / f"{name}_eps_{args.eps:g}_{i}.vnnlib"
        mk.write_vnnlib(spec, lb, ub, N_CLASSES, mk.robustness_output_lines(int(y[i]), N_CLASSES),
                        [f"{name}: test image {i}, label {int(y[i])}, L_inf eps {args.eps:g} "
                         "clipped to [0, 1] (examples/certified_training.py)"])
        verdicts.append(hybridver.verify_files(onnx_path, spec, config).verdict.value)
    verify_s = time.perf_counter() - t0
    for i, v in enumerate(verdicts):   # a sound bound and a confirmed counterexample clash
        if v == "sat" and bool(worst[i] > 1e-4):   # (beyond float32 rounding)
            raise AssertionError(f"{name}: image {i} is sat but the training bound proves it")
    unsat = sum(v == "unsat" for v in verdicts)
    return {"network": name, "clean_accuracy": clean, "n_verified": n,
            "verified_accuracy": unsat / n, "unsat": unsat,
            "sat": sum(v == "sat" for v in verdicts),
            "other": sum(v not in ("sat", "unsat") for v in verdicts),
            "training_bound_certified": float(bound_certified.float().mean()),
            "verify_s": verify_s}


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    args.train_eps = 1.2 * args.eps if args.train_eps is None else args.train_eps
    args.warmup = max(1, args.epochs // 10) if args.warmup is None else args.warmup
    args.ramp = max(1, args.epochs // 2) if args.ramp is None else args.ramp
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    Xtr, ytr, Xte, yte = load_data()
    runs = ([] if args.no_certified else [("certified", True)]) \
        + ([] if args.no_natural else [("natural", False)])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for kind, certified in runs:
            net = make_net(args.hidden, args.seed)
            train_s = train(net, Xtr, ytr, args, certified)
            name = f"digits_{args.method}" if certified else "digits_natural"
            res = verify(net, name, Xte, yte, args, out)
            res.update(kind=kind, method=args.method if certified else "natural",
                       train_s=train_s, eps=args.eps, epochs=args.epochs)
            results.append(res)
    n = min(args.n_verify, len(Xte))
    print(f"eps {args.eps:g} (trained for {args.train_eps:g}), {args.epochs} epochs, "
          f"{n} test images verified, timeout {args.timeout:g} s, "
          f"{time.perf_counter() - t_start:.1f} s in all")
    print(f"{'network':<16} {'clean acc':>9} {'verified acc':>12} {'unsat/sat/other':>15} "
          f"{'bound est.':>10} {'train s':>8} {'verify s':>8}")
    for r in results:
        print(f"{r['network']:<16} {r['clean_accuracy']:>9.1%} {r['verified_accuracy']:>12.1%} "
              f"{r['unsat']:>5}/{r['sat']}/{r['other']:<7} {r['training_bound_certified']:>10.1%} "
              f"{r['train_s']:>8.1f} {r['verify_s']:>8.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
