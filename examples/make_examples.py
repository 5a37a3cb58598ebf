#!/usr/bin/env python
"""Build hybridver's example networks and VNN-LIB properties, with known answers.

Run from anywhere:  python examples/make_examples.py

What it does (deterministic: fixed seeds, one torch thread):

* trains three small MLPs (64-32-32-10; ReLU, Sigmoid, Tanh) on scikit-learn's bundled
  8x8 digits data set (no download) and writes them as ONNX built by hand with
  onnx.helper (Gemm transB=1 + activation nodes, opset 17), checked against torch
  with onnxruntime;
* writes L_inf robustness properties around correctly classified test images:
  - small eps, proven robust (``unsat``) by the plain interval arithmetic (IBP) in this
    script;
  - large eps, with a counterexample found by PGD and confirmed with onnxruntime
    (``sat``);
* writes a tiny 2-8-8-2 ReLU network whose property is decided exactly by a dense grid
  plus a Lipschitz bound;
* writes instances.csv (VNN-COMP format), expected_results.csv and README.md.

Only answers established by this script are written to expected_results.csv.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
SEED = 0
OPSET = 17
IR_VERSION = 8  # conservative, readable by older onnxruntime releases too
TIMEOUT_S = 60
SMALL_EPS_LIST = [0.001, 0.002, 0.005, 0.01, 0.02]
LARGE_EPS_LIST = [0.2, 0.25, 0.3]
N_SMALL = 2  # images per network with a small (IBP-proven) eps
N_LARGE = 1  # images per network with a large eps and a PGD counterexample
IBP_SAFETY = 1e-6  # required IBP margin, far above float64 rounding of the bound computation
CEX_SAFETY = 1e-3  # required violation of a counterexample, in float32 and float64 evaluation

PROV_IBP = "interval bound proof in make_examples.py"
PROV_PGD = "PGD counterexample confirmed with onnxruntime in make_examples.py"

ACTS = {
    "relu": (torch.nn.ReLU, "Relu", lambda v: np.maximum(v, 0.0)),
    "sigmoid": (torch.nn.Sigmoid, "Sigmoid", lambda v: 1.0 / (1.0 + np.exp(-v))),
    "tanh": (torch.nn.Tanh, "Tanh", np.tanh),
}


# --------------------------------------------------------------------------- helpers


def fmt(v: float) -> str:
    """Shortest decimal that parses back to exactly this float64, never in exponent form."""
    return np.format_float_positional(float(v), unique=True, trim="0")


def seed_all(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def layers_of(model: torch.nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W [out, in], b [out]) float32 arrays of the Linear layers, in order."""
    return [
        (m.weight.detach().numpy().astype(np.float32).copy(),
         m.bias.detach().numpy().astype(np.float32).copy())
        for m in model if isinstance(m, torch.nn.Linear)
    ]


def forward_np(layers, act, x: np.ndarray) -> np.ndarray:
    """float64 reference forward pass; x is [n, in]."""
    h = np.asarray(x, dtype=np.float64)
    for i, (W, b) in enumerate(layers):
        h = h @ W.astype(np.float64).T + b.astype(np.float64)
        if i < len(layers) - 1:
            h = act(h)
    return h


def ibp(layers, act, lb: np.ndarray, ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain interval arithmetic in float64: Gemm in center/radius form, monotone
    activations map the endpoints."""
    lo = np.asarray(lb, dtype=np.float64)
    hi = np.asarray(ub, dtype=np.float64)
    for i, (W, b) in enumerate(layers):
        W = W.astype(np.float64)
        c = (lo + hi) / 2.0
        r = (hi - lo) / 2.0
        c = W @ c + b.astype(np.float64)
        r = np.abs(W) @ r
        lo, hi = c - r, c + r
        if i < len(layers) - 1:
            lo, hi = act(lo), act(hi)
    return lo, hi


def ibp_margin(layers, act, lb, ub, label: int) -> float:
    """Lower bound of min_{j != label} (y_label - y_j) from plain output intervals."""
    lo, hi = ibp(layers, act, lb, ub)
    others = [j for j in range(len(lo)) if j != label]
    return float(min(lo[label] - hi[j] for j in others))


def ort_session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_run(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """Run the [1, n] model one row at a time; returns [rows, out] float32."""
    x = np.asarray(x, dtype=np.float32).reshape(-1, x.shape[-1])
    return np.concatenate([sess.run(["output"], {"input": row[None, :]})[0] for row in x])


# --------------------------------------------------------------------------- ONNX


def write_onnx(layers, act_op: str, n_in: int, n_out: int, path: Path, name: str) -> None:
    inits, nodes = [], []
    cur = "input"
    for i, (W, b) in enumerate(layers):
        wn, bn = f"layer{i}.weight", f"layer{i}.bias"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(W, dtype=np.float32), wn))
        inits.append(numpy_helper.from_array(np.ascontiguousarray(b, dtype=np.float32), bn))
        last = i == len(layers) - 1
        out = "output" if last else f"gemm{i}"
        nodes.append(helper.make_node("Gemm", [cur, wn, bn], [out], name=f"Gemm_{i}",
                                      alpha=1.0, beta=1.0, transB=1))
        if not last:
            act_out = f"act{i}"
            nodes.append(helper.make_node(act_op, [out], [act_out], name=f"{act_op}_{i}"))
            cur = act_out
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, producer_name="hybridver-make_examples",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


# --------------------------------------------------------------------------- VNN-LIB


def write_vnnlib(path: Path, lb, ub, n_out: int, output_lines: list[str], comment: list[str]):
    lines = [f"; {c}" for c in comment]
    lines.append("")
    lines += [f"(declare-const X_{i} Real)" for i in range(len(lb))]
    lines.append("")
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    lines.append("")
    lines.append("; input box")
    for i, (lo, hi) in enumerate(zip(lb, ub)):
        lines.append(f"(assert (<= X_{i} {fmt(hi)}))")
        lines.append(f"(assert (>= X_{i} {fmt(lo)}))")
    lines.append("")
    lines += output_lines
    path.write_text("\n".join(lines) + "\n")


def robustness_output_lines(label: int, n_out: int) -> list[str]:
    terms = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(n_out) if j != label)
    return [f"; unsafe: some class j != {label} scores at least as high as class {label}",
            f"(assert (or {terms}))"]


def linf_box(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The box as it will be read back from the VNN-LIB text (float64, exact round trip)."""
    lb = np.clip(x.astype(np.float64) - eps, 0.0, 1.0)
    ub = np.clip(x.astype(np.float64) + eps, 0.0, 1.0)
    lb = np.array([float(fmt(v)) for v in lb])
    ub = np.array([float(fmt(v)) for v in ub])
    return lb, ub


# --------------------------------------------------------------------------- training


def train(act_name: str, Xtr, ytr, Xte, yte) -> tuple[torch.nn.Sequential, float]:
    seed_all(SEED)
    act_cls = ACTS[act_name][0]
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 32), act_cls(),
        torch.nn.Linear(32, 32), act_cls(),
        torch.nn.Linear(32, 10),
    )
    lr = {"relu": 3e-3, "sigmoid": 1e-2, "tanh": 3e-3}[act_name]
    epochs = 40
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt = torch.tensor(Xtr, dtype=torch.float32)
    yt = torch.tensor(ytr, dtype=torch.long)
    gen = torch.Generator().manual_seed(SEED)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(xt), 32):
            idx = perm[s:s + 32]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(Xte, dtype=torch.float32)).argmax(1).numpy()
    return model, float((pred == yte).mean())


# --------------------------------------------------------------------------- PGD


def pgd(model, x0, label, lb, ub, steps=300, restarts=16, seed=0) -> np.ndarray:
    """Maximise max_{j != label} y_j - y_label over the box; returns the best point found."""
    gen = torch.Generator().manual_seed(seed)
    lo = torch.tensor(lb, dtype=torch.float32)
    hi = torch.tensor(ub, dtype=torch.float32)
    x = lo + torch.rand(restarts, len(lb), generator=gen) * (hi - lo)
    x[0] = torch.clamp(torch.tensor(x0, dtype=torch.float32), lo, hi)
    mask = torch.ones(10, dtype=torch.bool)
    mask[label] = False
    best_x, best_v = x[0].clone(), -math.inf
    width = (hi - lo).max().item()
    for t in range(steps):
        x.requires_grad_(True)
        y = model(x)
        viol = y[:, mask].max(1).values - y[:, label]
        grad, = torch.autograd.grad(viol.sum(), x)
        with torch.no_grad():
            k = int(viol.argmax())
            if viol[k].item() > best_v:
                best_v, best_x = viol[k].item(), x[k].detach().clone()
            alpha = width * (0.1 if t < steps // 2 else 0.02)
            x = torch.max(torch.min(x + alpha * grad.sign(), hi), lo)
    return best_x.numpy()


def into_box_f32(x, lb, ub) -> np.ndarray:
    """float32 point whose exact value lies in [lb, ub] (float64 bounds)."""
    x32 = np.clip(np.asarray(x, dtype=np.float64), lb, ub).astype(np.float32)
    for i in range(len(x32)):
        while float(x32[i]) > ub[i]:
            x32[i] = np.nextafter(x32[i], np.float32(-np.inf))
        while float(x32[i]) < lb[i]:
            x32[i] = np.nextafter(x32[i], np.float32(np.inf))
    return x32


# --------------------------------------------------------------------------- tiny net


def make_tiny(rows_inst, rows_exp, summary) -> dict:
    rng = np.random.default_rng(7)
    W1 = rng.normal(size=(8, 2))
    b1 = rng.normal(size=8) * 1.2
    W2 = rng.normal(size=(8, 8)) / math.sqrt(8)
    b2 = rng.normal(size=8) * 0.3
    W3 = rng.normal(size=(2, 8)) / math.sqrt(8)
    b3 = np.zeros(2)
    layers = [(W.astype(np.float32), b.astype(np.float32))
              for W, b in [(W1, b1), (W2, b2), (W3, b3)]]
    relu = ACTS["relu"][2]

    n = 2001  # grid points per axis, including the box corners
    g = np.linspace(-1.0, 1.0, n)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    h_spacing = 2.0 / (n - 1)

    def margin_on_grid(lays):  # g(x) = Y_1 - Y_0; property "Y_0 >= Y_1" is sat iff min g <= 0
        out = forward_np(lays, relu, grid)
        return out[:, 1] - out[:, 0]

    # Shift the output bias so that Y_1 - Y_0 stays positive on the box with a margin of
    # 10% of its range: unsat, yet plain IBP cannot prove it (see the summary).
    m = margin_on_grid(layers)
    target = 0.10 * (m.max() - m.min())
    layers[2][1][1] = np.float32(target - m.min())
    m = margin_on_grid(layers)

    # Lipschitz constant (L2) of g: ||W3[1]-W3[0]||_2 * ||W2||_2 * ||W1||_2, ReLU being
    # 1-Lipschitz; 1% safety on the numerically computed spectral norms.
    Wd = (layers[2][0][1].astype(np.float64) - layers[2][0][0].astype(np.float64))
    L = (np.linalg.norm(Wd) * np.linalg.norm(layers[1][0].astype(np.float64), 2)
         * np.linalg.norm(layers[0][0].astype(np.float64), 2)) * 1.01
    # every point of the box is within half_spacing*sqrt(2) (L2) of a grid point
    slack = L * (h_spacing / 2.0) * math.sqrt(2.0)
    gmin = float(m.min())
    if gmin <= 0.0:
        expected = "sat"
        k = int(m.argmin())
        prov = (f"grid point ({fmt(grid[k, 0])} {fmt(grid[k, 1])}) has Y_0 >= Y_1 "
                "in make_examples.py")
    elif gmin > slack:
        expected = "unsat"
        prov = (f"dense {n}x{n} grid min(Y_1-Y_0)={gmin:.4f} > Lipschitz bound "
                f"L*h*sqrt(2)/2={slack:.4f} (L={L:.3f} from weight spectral norms) "
                "in make_examples.py")
    else:
        raise RuntimeError("tiny net: grid not fine enough to decide the property")

    path = HERE / "tiny_relu.onnx"
    write_onnx(layers, "Relu", 2, 2, path, "tiny_relu")
    sess = ort_session(path)
    pts = np.random.default_rng(1).uniform(-1, 1, size=(200, 2)).astype(np.float32)
    diff = np.abs(ort_run(sess, pts) - forward_np(layers, relu, pts)).max()
    assert diff < 1e-5, f"tiny onnx mismatch {diff}"

    write_vnnlib(HERE / "tiny_relu.vnnlib", [-1.0, -1.0], [1.0, 1.0], 2,
                 ["; unsafe: Y_0 >= Y_1 somewhere on the box", "(assert (>= Y_0 Y_1))"],
                 ["tiny 2-8-8-2 ReLU network (random weights, seed 7) on [-1,1]^2",
                  f"expected: {expected} ({prov})"])

    # instability of hidden neurons on the box
    l1 = layers[0]
    unstable1 = int(np.sum(np.abs(l1[1].astype(np.float64))
                           < np.abs(l1[0].astype(np.float64)).sum(1)))
    pre2 = relu(grid @ l1[0].astype(np.float64).T + l1[1]) @ layers[1][0].astype(np.float64).T \
        + layers[1][1]
    unstable2 = int(np.sum((pre2.min(0) < 0) & (pre2.max(0) > 0)))
    lo, hi = ibp(layers, relu, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    rows_inst.append(("tiny_relu.onnx", "tiny_relu.vnnlib", TIMEOUT_S))
    rows_exp.append(("tiny_relu.onnx", "tiny_relu.vnnlib", TIMEOUT_S, expected, prov))
    info = dict(expected=expected, gmin=gmin, L=L, slack=slack, n=n,
                unstable1=unstable1, unstable2=unstable2,
                ibp_margin=float(lo[1] - hi[0]), prov=prov)
    summary.append(("tiny_relu", "tiny_relu.vnnlib", "-", "-", expected,
                    f"grid min {gmin:.4f} > {slack:.4f}" if expected == "unsat" else "grid"))
    return info


# --------------------------------------------------------------------------- README


def write_readme(accs, nets_info, tiny):
    L = []
    L.append("# hybridver examples")
    L.append("")
    L.append("Small real networks and VNN-LIB properties that the project makes itself, with")
    L.append("answers established by the generating script. Everything here (including this")
    L.append("README) is written by `make_examples.py`; regenerate with")
    L.append("")
    L.append("```")
    L.append("python examples/make_examples.py")
    L.append("```")
    L.append("")
    L.append("(needs torch, numpy, onnx, onnxruntime, scikit-learn; deterministic: fixed seeds,")
    L.append("one torch thread; about 10 s on 2 CPU cores). It asserts every answer it writes.")
    L.append("")
    L.append("## Files")
    L.append("")
    L.append("| file | what |")
    L.append("|---|---|")
    L.append("| `make_examples.py` | the generator |")
    for net in accs:
        act = net.split("_")[1]
        L.append(f"| `{net}.onnx` | MLP 64-32-32-10, {act} activations, trained on the sklearn "
                 "8x8 digits (pixels/16 in [0,1]); input `input` [1,64], output `output` [1,10]; "
                 "Gemm (transB=1) + activation nodes, opset 17 |")
    L.append(f"| `<net>_eps_small_<k>.vnnlib` | L_inf ball (clipped to [0,1]) around test image "
             "k; robustness proven by plain interval arithmetic: `unsat` |")
    L.append(f"| `<net>_eps_large_<k>.vnnlib` | same with a large eps; PGD counterexample "
             "confirmed with onnxruntime: `sat` |")
    L.append("| `tiny_relu.onnx` | 2-8-8-2 ReLU network, random weights (seed 7); input [1,2] |")
    L.append("| `tiny_relu.vnnlib` | box [-1,1]^2, unsafe set `Y_0 >= Y_1` |")
    L.append("| `instances.csv` | VNN-COMP instance list: onnx, vnnlib, timeout (s); paths "
             "relative to this folder; no header |")
    L.append("| `expected_results.csv` | header `onnx,vnnlib,timeout_s,expected,provenance` |")
    L.append("")
    L.append("`k` is the index of the image in the test split (`train_test_split(test_size=0.2, "
             "stratify=y, random_state=0)` of `load_digits()`). In every robustness property "
             "the unsafe set is `(or (and (>= Y_j Y_label)) ...)` over all j != label: a "
             "counterexample is an input of the box where some other class scores at least as "
             "high as the true label. `sat` means such an input exists, `unsat` means the "
             "network is robust on the box.")
    L.append("")
    L.append("## Networks")
    L.append("")
    L.append("| network | test accuracy (360 images) |")
    L.append("|---|---|")
    for net, acc in accs.items():
        L.append(f"| `{net}.onnx` | {100 * acc:.2f}% |")
    L.append("")
    L.append("## Properties and expected answers")
    L.append("")
    L.append("| onnx | vnnlib | label | eps | expected | how it was established |")
    L.append("|---|---|---|---|---|---|")
    for r in nets_info:
        L.append(f"| `{r['onnx']}` | `{r['vnnlib']}` | {r['label']} | {r['eps']} | "
                 f"{r['expected']} | {r['how']} |")
    L.append(f"| `tiny_relu.onnx` | `tiny_relu.vnnlib` | - | - | {tiny['expected']} | "
             f"{tiny['prov']} |")
    L.append("")
    L.append("Small eps: for each image the largest eps of "
             f"{SMALL_EPS_LIST} for which plain interval arithmetic (float64, center/radius "
             "through Gemm, endpoints through the monotone activation) gives "
             f"`lower(y_label) - upper(y_j) > {IBP_SAFETY:g}` for every j != label. The images "
             "are the first correctly classified test images where the smallest eps is proven.")
    L.append("")
    L.append(f"Large eps: the smallest eps of {LARGE_EPS_LIST} for which PGD (16 restarts, 300 "
             "steps) finds a point of the box with `max_j y_j - y_label >= "
             f"{CEX_SAFETY:g}`; the point is rounded to float32 inside the box and re-checked "
             "with onnxruntime and a float64 forward pass. The counterexamples are printed by "
             "the script, not stored.")
    L.append("")
    L.append("Tiny network: Y_1 - Y_0 is evaluated in float64 on a dense "
             f"{tiny['n']}x{tiny['n']} grid of [-1,1]^2 (corners included). Its minimum, "
             f"{tiny['gmin']:.4f}, exceeds L*h*sqrt(2)/2 = {tiny['slack']:.4f}, where "
             f"h = 2/{tiny['n'] - 1} is the grid spacing and L = {tiny['L']:.3f} is a Lipschitz "
             "constant (L2) of Y_1 - Y_0: ||W3[1] - W3[0]||_2 * ||W2||_2 * ||W1||_2 (spectral "
             "norms, ReLU is 1-Lipschitz; +1% safety); every point of the box lies within h*sqrt(2)/2 of a grid point, so "
             "Y_1 > Y_0 on the whole box: `unsat`. The output bias was shifted so that the "
             "margin is 10% of the range of Y_1 - Y_0. "
             f"{tiny['unstable1']} of 8 first-layer neurons are unstable on the box (exactly), "
             f"at least {tiny['unstable2']} of 8 second-layer neurons (sign change on the "
             f"grid); plain interval arithmetic gives only lower(Y_1) - upper(Y_0) = "
             f"{tiny['ibp_margin']:.3f}, so the proof needs more than IBP.")
    L.append("")
    (HERE / "README.md").write_text("\n".join(L) + "\n")


# --------------------------------------------------------------------------- main


def main() -> None:
    t0 = time.time()
    torch.set_num_threads(1)
    seed_all(SEED)

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=SEED)

    rows_inst, rows_exp, summary, readme_rows = [], [], [], []
    accs = {}
    for act_name in ["relu", "sigmoid", "tanh"]:
        net = f"digits_{act_name}"
        ts = time.time()
        model, acc = train(act_name, Xtr, ytr, Xte, yte)
        accs[net] = acc
        assert acc > 0.90, f"{net}: test accuracy {acc:.3f} too low"
        layers = layers_of(model)
        act_np = ACTS[act_name][2]
        onnx_name = f"{net}.onnx"
        write_onnx(layers, ACTS[act_name][1], 64, 10, HERE / onnx_name, net)

        sess = ort_session(HERE / onnx_name)
        with torch.no_grad():
            y_torch = model(torch.tensor(Xte)).numpy()
        y_ort = ort_run(sess, Xte)
        diff = float(np.abs(y_ort - y_torch).max())
        assert diff < 1e-4, f"{net}: onnxruntime vs torch max abs diff {diff}"
        pred = y_ort.argmax(1)
        print(f"{net}: test accuracy {100 * acc:.2f}%  onnxruntime max|diff| {diff:.2e}  "
              f"train {time.time() - ts:.1f}s")

        # ---- small eps, proven by IBP
        used = set()
        for k in range(len(Xte)):
            if len([r for r in readme_rows if r["onnx"] == onnx_name]) >= N_SMALL:
                break
            label = int(yte[k])
            if pred[k] != label:
                continue
            best = None
            for eps in SMALL_EPS_LIST:
                lb, ub = linf_box(Xte[k], eps)
                mg = ibp_margin(layers, act_np, lb, ub, label)
                if mg > IBP_SAFETY:
                    best = (eps, lb, ub, mg)
            if best is None:
                continue
            eps, lb, ub, mg = best
            used.add(k)
            vn = f"{net}_eps_small_{k}.vnnlib"
            write_vnnlib(HERE / vn, lb, ub, 10, robustness_output_lines(label, 10),
                         [f"{net}: L_inf robustness of test image {k} (label {label}), "
                          f"eps={eps}, box clipped to [0,1]",
                          f"expected: unsat ({PROV_IBP}; IBP margin lower bound {mg:.4g})"])
            rows_inst.append((onnx_name, vn, TIMEOUT_S))
            rows_exp.append((onnx_name, vn, TIMEOUT_S, "unsat", PROV_IBP))
            readme_rows.append(dict(onnx=onnx_name, vnnlib=vn, label=label, eps=eps,
                                    expected="unsat", how=f"IBP margin >= {mg:.4g}"))
            summary.append((net, vn, label, eps, "unsat", f"IBP margin {mg:.4g}"))
        assert len(used) == N_SMALL, f"{net}: IBP proved too few images"

        # ---- large eps, PGD counterexample confirmed by onnxruntime
        n_large = 0
        for k in range(len(Xte)):
            if n_large >= N_LARGE:
                break
            label = int(yte[k])
            if k in used or pred[k] != label:
                continue
            for eps in LARGE_EPS_LIST:
                lb, ub = linf_box(Xte[k], eps)
                xadv = pgd(model, Xte[k], label, lb, ub, seed=SEED + k)
                x32 = into_box_f32(xadv, lb, ub)
                assert np.all(x32.astype(np.float64) >= lb) and np.all(x32.astype(np.float64) <= ub)
                others = [j for j in range(10) if j != label]
                yo = ort_run(sess, x32[None, :])[0].astype(np.float64)
                y64 = forward_np(layers, act_np, x32[None, :])[0]
                v_ort = max(yo[j] - yo[label] for j in others)
                v_64 = max(y64[j] - y64[label] for j in others)
                if v_ort >= CEX_SAFETY and v_64 >= CEX_SAFETY:
                    j_adv = others[int(np.argmax([yo[j] for j in others]))]
                    vn = f"{net}_eps_large_{k}.vnnlib"
                    write_vnnlib(HERE / vn, lb, ub, 10, robustness_output_lines(label, 10),
                                 [f"{net}: L_inf robustness of test image {k} (label {label}), "
                                  f"eps={eps}, box clipped to [0,1]",
                                  f"expected: sat ({PROV_PGD})"])
                    rows_inst.append((onnx_name, vn, TIMEOUT_S))
                    rows_exp.append((onnx_name, vn, TIMEOUT_S, "sat", PROV_PGD))
                    readme_rows.append(dict(onnx=onnx_name, vnnlib=vn, label=label, eps=eps,
                                            expected="sat",
                                            how=f"PGD: class {j_adv} beats {label} by "
                                                f"{v_ort:.3g} (onnxruntime)"))
                    summary.append((net, vn, label, eps, "sat",
                                    f"cex: y_{j_adv}-y_{label}={v_ort:.3g}"))
                    print(f"  counterexample for {vn} (float32; onnxruntime y_{j_adv} - "
                          f"y_{label} = {v_ort:.4g}, float64 {v_64:.4g}):")
                    print("  x = [" + ", ".join(repr(float(v)) for v in x32) + "]")
                    print("  y = [" + ", ".join(f"{v:.5f}" for v in yo) + "]")
                    n_large += 1
                    break
        assert n_large == N_LARGE, f"{net}: no PGD counterexample found"

    tiny = make_tiny(rows_inst, rows_exp, summary)

    with open(HERE / "instances.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerows(rows_inst)
    with open(HERE / "expected_results.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["onnx", "vnnlib", "timeout_s", "expected", "provenance"])
        w.writerows(rows_exp)

    total = time.time() - t0
    write_readme(accs, readme_rows, tiny)

    print()
    print(f"{'network':<16} {'property':<36} {'label':>5} {'eps':>6} {'expected':>8}  evidence")
    for net, vn, label, eps, exp, ev in summary:
        print(f"{net:<16} {vn:<36} {label!s:>5} {eps!s:>6} {exp:>8}  {ev}")
    print()
    for net, acc in accs.items():
        print(f"{net}: test accuracy {100 * acc:.2f}%")
    print(f"tiny_relu: unstable neurons layer 1 {tiny['unstable1']}/8, layer 2 >= "
          f"{tiny['unstable2']}/8; IBP margin {tiny['ibp_margin']:.3f}; grid min "
          f"{tiny['gmin']:.4f} vs Lipschitz slack {tiny['slack']:.4f} (L={tiny['L']:.3f})")
    print(f"total time {total:.1f}s")


if __name__ == "__main__":
    main()
