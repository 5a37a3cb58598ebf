"""Network-level soundness: for every example network and the shared benchmark networks that
import, 10,000 sampled inputs of a box (plus its corners in low dimension) have outputs
inside the IBP, CROWN and alpha-CROWN bounds.

The box is the first case of the network's first VNN-LIB instance (the property's real
input region), or a box of radius 0.05 around a random point when there is none.  Shared
networks are skipped where ``../shared/benchmarks`` is absent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from hybridver.api import load_model, load_spec
from hybridver.bounds import AlphaConfig, BoundConfig, UnsupportedBoundError, compute_bounds
from hybridver.ir import evaluate
from tests.bounds.test_crown import sample_box
from tests.conftest import EXAMPLES, SHARED_BENCHMARKS, shared_files

N_SAMPLES = 10_000
METHODS = ("ibp", "crown", "alpha-crown")
ALPHA = AlphaConfig(iterations=6)

#: (relative path or example name, marks, extra BoundConfig fields, methods allowed to
#: refuse with UnsupportedBoundError)
SHARED = [
    ("acasxu/ACASXU_run2a_1_1_batch_2000.onnx", (), {}, ()),
    ("acasxu/ACASXU_run2a_3_3_batch_2000.onnx", (), {}, ()),
    ("acasxu/ACASXU_run2a_5_9_batch_2000.onnx", (), {}, ()),
    ("mnist_fc_2022/onnx/mnist-net_256x2.onnx.gz", (), {}, ()),
    ("dist_shift_2023/onnx/mnist_concat.onnx.gz", (), {}, ()),
    ("lsnc_2024/onnx/quadrotor2d_state.onnx.gz", (), {}, ()),
    ("lsnc_2024/onnx/quadrotor2d_output.onnx.gz", (), {}, ()),
    ("ml4acopf_2023/onnx/14_ieee_ml4acopf.onnx.gz", (), {}, ()),
    ("nn4sys_2023/onnx/mscn_128d.onnx.gz", (), {}, ()),
    ("vnncomp_test/test_nano.onnx", (), {}, ()),
    ("vnncomp_test/test_tiny.onnx", (), {}, ()),
    ("vnncomp_test/test_small.onnx", (), {}, ()),
    ("vnncomp_test/test_sat.onnx", (), {}, ()),
    ("marabou_resources/onnx/fc_2-2sigmoids-3.onnx", (), {}, ()),
    ("marabou_resources/onnx/mnist2x5_sigmoid.onnx", (), {}, ()),
    ("marabou_resources/onnx/mnist5x20_leaky_relu.onnx", (), {}, ()),
    ("marabou_resources/onnx/robust_model_sigmoid_linear.onnx", (), {}, ()),
    # its logits differ by up to ~100 on this box: exp overflows float32, so float64
    ("marabou_resources/onnx/softmax-last-layer.onnx", (), {"dtype": "float64"}, ()),
    ("marabou_resources/onnx/tanh_test.onnx", (), {}, ()),
    ("marabou_resources/onnx/layer-zoo/leakyRelu.onnx", (), {}, ()),
    ("marabou_resources/onnx/layer-zoo/sigmoid.onnx", (), {}, ()),
    ("marabou_resources/onnx/layer-zoo/tanh.onnx", (), {}, ()),
    # vit: IBP cannot bound LayerNorm's division (interval of the variance reaches 0)
    ("vit_2023/onnx/pgd_2_3_16.onnx.gz", (pytest.mark.slow,), {}, ("ibp",)),
    # cGAN: 5 inputs but 10^4-10^5 neurons per layer: CROWN intermediate bounds are far too
    # costly in backward mode, so this run uses IBP intermediate bounds
    ("cgan_2023/onnx/cGAN_imgSz32_nCh_3_upsample.onnx.gz", (pytest.mark.slow,),
     {"intermediate": "ibp"}, ()),
    ("cgan_2023/onnx/cGAN_imgSz32_nCh_3_nonlinear_activations.onnx.gz", (pytest.mark.slow,),
     {"intermediate": "ibp"}, ()),
]


def _first_instance(model_path: Path) -> Path | None:
    """The VNN-LIB file of the first instance of ``model_path`` in its group's CSV."""
    for folder in (model_path.parent, model_path.parent.parent):
        for table in sorted(folder.glob("*instances.csv")):
            with open(table) as fh:
                for row in csv.reader(fh):
                    if row and Path(row[0]).name.replace(".gz", "") == \
                            model_path.name.replace(".gz", ""):
                        spec = folder / row[1].strip()
                        for candidate in (spec, Path(str(spec) + ".gz")):
                            if candidate.exists():
                                return candidate
    return None


def _box(model, model_path: Path) -> tuple[np.ndarray, np.ndarray]:
    spec_path = _first_instance(model_path)
    if spec_path is None and model_path.parent == EXAMPLES:
        spec_path = next(iter(sorted(EXAMPLES.glob(model_path.stem + "*.vnnlib"))), None)
    if spec_path is not None:
        region = load_spec(spec_path, model).cases[0].region
        return region.lower, region.upper
    c = np.random.default_rng(0).random(model.n_inputs)
    return c - 0.05, c + 0.05


def _check(path: Path, extra: dict, may_refuse: tuple[str, ...]) -> None:
    model = load_model(path)
    graph = model.graph
    lo, hi = _box(model, path)
    points = sample_box(lo, hi, N_SAMPLES, seed=1)
    shaped = points.reshape(-1, *graph.input_node.shape)
    y = np.concatenate([evaluate(graph, shaped[i:i + 500]).reshape(len(shaped[i:i + 500]), -1)
                        .numpy() for i in range(0, len(shaped), 500)])  # bounded memory
    for method in METHODS:
        config = BoundConfig(method=method, alpha=ALPHA, **extra)
        try:
            res = compute_bounds(graph, lo[None], hi[None], config=config)
        except UnsupportedBoundError:
            if method in may_refuse:
                continue
            raise
        low, up = res.lower[0].numpy(), res.upper[0].numpy()
        assert np.all(y >= low), f"{method}: below lower bound by {float(np.max(low - y))}"
        assert np.all(y <= up), f"{method}: above upper bound by {float(np.max(y - up))}"
        assert np.all(low <= up)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.onnx")))
def test_example_networks(name):
    _check(EXAMPLES / name, {}, ())


@pytest.mark.parametrize("rel,extra,may_refuse", [
    pytest.param(rel, extra, refuse, marks=marks, id=Path(rel).name.split(".")[0])
    for rel, marks, extra, refuse in SHARED])
def test_shared_networks(rel, extra, may_refuse):
    if not shared_files(rel):
        pytest.skip(f"{rel} not found under {SHARED_BENCHMARKS}")
    _check(SHARED_BENCHMARKS / rel, extra, may_refuse)


def test_float64_agrees_with_float32_within_margin():
    path = EXAMPLES / "digits_sigmoid.onnx"
    model = load_model(path)
    lo, hi = _box(model, path)
    b32 = compute_bounds(model.graph, lo[None], hi[None])
    b64 = compute_bounds(model.graph, lo[None], hi[None], config=BoundConfig(dtype="float64"))
    torch.testing.assert_close(b32.lower, b64.lower, rtol=1e-3, atol=1e-3)
    assert torch.all(b64.lower >= b32.lower - 1e-3)
