"""hybridver plant: a tiny benchmark end to end (layout, witnesses on onnxruntime, the
check attack, hybridver's exact mode answering sat), and the pieces it is made of."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from hybridver.config import Mode, VerifyConfig
from hybridver.errors import HybridverInputError
from hybridver.frontends import OnnxRuntimeModel
from hybridver.progress import Progress
from hybridver.result import Verdict
from hybridver.soundness import plant as plant_module
from hybridver.soundness.plant import PlantSettings, plant_benchmark
from hybridver.soundness.plant_attack import AttackOutcome, AttackSettings, attack_boxes
from hybridver.soundness.plant_data import make_boxes, neighbour_vertices
from hybridver.soundness.plant_models import PlantedNet, build_model
from hybridver.soundness.plant_train import TrainSettings, train_model
from hybridver.specs import load_vnnlib

N, K = 16, 3
#: small but real: every check runs, on a tiny MLP, in a second or two
TINY = PlantSettings(archs=("mlp",), input_dim=N, n_classes=K, planted=2, clean=1, normal=4,
                     width=8, train=TrainSettings(epochs=60),
                     attack=AttackSettings(restarts=16, steps=30, random_points=300,
                                           vertex_points=300))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: torch's threads only add overhead (and the cores are shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Recorder(Progress):
    """A progress display that keeps what it is told."""

    def __init__(self):
        self.phases, self.fields = [], []

    def phase(self, name):
        self.phases.append(name)

    def update(self, **fields):
        self.fields.append(fields)


@pytest.fixture(scope="module")
def recorded():
    return Recorder()


@pytest.fixture(scope="module")
def bench(tmp_path_factory, recorded):
    out = tmp_path_factory.mktemp("plant") / "bench"
    summary = plant_benchmark(out, TINY, progress=recorded)
    return out, summary


def test_training_reports_progress(bench, recorded):
    assert recorded.phases == ["train mlp (try 1)", "check mlp (try 1)"]
    epochs = [f["epoch"] for f in recorded.fields]
    assert epochs[0] == "0/60" and epochs[-1] == "60/60" and len(epochs) == 61
    assert all(float(f["loss"]) >= 0 for f in recorded.fields[1:])


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_layout(bench):
    out, summary = bench
    assert (summary.models, summary.planted, summary.clean) == (1, 2, 1)
    assert summary.sealed == out.parent / "bench-sealed" / "witnesses.json"
    instances = _rows(out / "instances.csv")
    assert len(instances) == 3 and all(len(r) == 3 for r in instances)
    assert {r[0] for r in instances} == {"onnx/mlp.onnx"}
    assert all(r[2] == "60" and (out / r[1]).is_file() for r in instances)
    assert sorted(r[1] for r in instances) == [f"vnnlib/mlp_prop_{j}.vnnlib" for j in range(3)]
    expected = _rows(out / "expected_results.csv")
    assert expected[0] == ["onnx", "vnnlib", "timeout_s", "expected", "files_present"]
    assert [r[:3] for r in expected[1:]] == instances
    assert sorted(r[3] for r in expected[1:]) == ["sat", "sat", "unknown"]
    assert all(r[4] == "yes" for r in expected[1:])
    sealed = json.loads(summary.sealed.read_text())
    assert sealed["format"] == "hybridver-witnesses/1" and sealed["benchmark"] == "bench"
    planted = {(r[0], r[1]) for r in expected[1:] if r[3] == "sat"}
    assert {(w["onnx"], w["vnnlib"]) for w in sealed["instances"]} == planted
    report = json.loads((out / "plant_report.json").read_text())
    assert report["counts"] == {"models": 1, "failed_models": [], "instances": 3,
                                "planted": 2, "clean": 1}
    assert report["models"][0]["kept"] and report["models"][0]["tries"][0]["train_time_s"] > 0
    # the report inside the benchmark folder names no witness (no output y, no vertex side)
    text = (out / "plant_report.json").read_text()
    assert all(repr(w["y"][0]) not in text for w in sealed["instances"])
    assert '"sign"' not in text and '"x"' not in text


def test_witnesses_are_vertices_that_violate_on_onnxruntime(bench):
    out, summary = bench
    ort = OnnxRuntimeModel(out / "onnx" / "mlp.onnx")
    for w in json.loads(summary.sealed.read_text())["instances"]:
        spec = load_vnnlib(out / w["vnnlib"], n_inputs=N, n_outputs=K)  # hybridver's parser
        (case,) = spec.cases
        x = np.asarray(w["x"])
        assert np.all((x == case.region.lower) | (x == case.region.upper))  # a vertex
        y = ort(x.astype(np.float32).reshape(1, *ort.input_shape)).reshape(-1)
        assert np.array_equal(y, np.asarray(w["y"]))
        margins = [float(np.max(dj.C @ y + dj.d)) for dj in case.disjuncts]
        assert min(margins) == w["margin"] <= -TINY.min_margin
        assert spec.is_counterexample(x, y)


def test_the_check_attack_found_nothing_in_planted_boxes(bench):
    out, _ = bench
    (model,) = json.loads((out / "plant_report.json").read_text())["models"]
    attack = model["tries"][-1]["attack"]
    planted = [a for a in attack if a["planted"]]
    assert len(planted) == 2 and not any(a["found"] for a in planted)
    assert all(a["best_violation"] < 0 for a in planted)


def test_hybridver_exact_mode_answers_sat_on_planted_instances(bench):
    from hybridver.api import verify_files

    out, _ = bench
    expected = _rows(out / "expected_results.csv")[1:]
    planted = [r for r in expected if r[3] == "sat"]
    result = verify_files(out / planted[0][0], out / planted[0][1],
                          VerifyConfig(mode=Mode.EXACT, timeout_s=120))
    assert result.verdict is Verdict.SAT
    assert result.counterexample is not None


def test_a_model_whose_planted_box_is_attackable_is_retrained_then_left_out(tmp_path,
                                                                           monkeypatch):
    def attack_finds_everything(model, shape, lower, upper, label, n_classes, settings, seed):
        return [AttackOutcome(True, 0.5, lower[b], "pgd") for b in range(len(label))]

    monkeypatch.setattr(plant_module, "attack_boxes", attack_finds_everything)
    settings = dataclasses.replace(TINY, tries=2, train=TrainSettings(epochs=5))
    summary = plant_benchmark(tmp_path / "b", settings)
    assert summary.models == 0 and summary.failed_models == ("mlp",)
    report = json.loads((tmp_path / "b" / "plant_report.json").read_text())
    tries = report["models"][0]["tries"]
    assert [t["ok"] for t in tries] == [False, False]
    assert all("attack found a counterexample in planted box 0" in t["why"] for t in tries)
    assert tries[0]["seed"] != tries[1]["seed"]
    assert _rows(tmp_path / "b" / "instances.csv") == []
    assert not list((tmp_path / "b" / "onnx").iterdir())


def test_bad_settings_and_folders_are_refused(tmp_path):
    with pytest.raises(HybridverInputError, match="unknown architecture 'lstm'"):
        plant_benchmark(tmp_path / "a", dataclasses.replace(TINY, archs=("lstm",)))
    with pytest.raises(HybridverInputError, match="--eps"):
        plant_benchmark(tmp_path / "a", dataclasses.replace(TINY, eps=0.5))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(HybridverInputError, match="not empty"):
        plant_benchmark(tmp_path / "full", TINY)
    with pytest.raises(HybridverInputError, match="inside"):
        plant_benchmark(tmp_path / "b", TINY, sealed=tmp_path / "b" / "w.json")


def test_bump_is_a_pyramid_on_the_vertex_and_zero_elsewhere():
    rng = np.random.default_rng(1)
    boxes = make_boxes(N, K, 0.1, 2, 3, rng)
    net = PlantedNet(torch.nn.Linear(N, K), N, K, 2)
    net.set_corners(boxes.lower[:2], boxes.upper[:2], boxes.sign[:2], depth=1.0, gain=4.0)
    vertex = boxes.vertices()
    half = (boxes.upper[:2] - boxes.lower[:2]) / 2
    for p in range(2):
        inward = vertex[p] - boxes.sign[p] * half[p] * 0.3 / N  # L1 distance 0.3 half-widths
        points = np.stack([vertex[p], inward, *neighbour_vertices(boxes, 8, 3, rng)[p],
                           *boxes.center, *boxes.lower, *boxes.upper])
        act = net.branch(torch.as_tensor(points, dtype=torch.float32)).detach().numpy()
        assert act[0, p] == pytest.approx(4.0, abs=1e-3)
        assert act[1, p] == pytest.approx(4.0 * 0.7, abs=1e-3)
        assert np.all(act[2:, p] == 0.0)  # neighbour vertices, other boxes: exactly zero
        assert np.all(act[:2, 1 - p] == 0.0)


def test_training_plants_the_vertex_and_the_attack_still_finds_nothing():
    rng = np.random.default_rng(3)
    boxes = make_boxes(N, K, 0.1, 2, 4, rng)
    net = PlantedNet(build_model("mlp", (N,), K, 8, seed=3), N, K, 2)
    net.set_corners(boxes.lower[:2], boxes.upper[:2], boxes.sign[:2], 1.0, 4.0)
    result = train_model(net, (N,), boxes, TrainSettings(epochs=60), seed=3)
    assert np.all(result.plant_violation > 0.5)
    outcomes = attack_boxes(net, (N,), boxes.lower, boxes.upper, boxes.label, K,
                            AttackSettings(restarts=32, steps=50, random_points=500,
                                           vertex_points=500), seed=11)
    assert not any(o.found for o in outcomes[:2])  # the planted boxes
    assert all(np.all((o.x >= boxes.lower[b]) & (o.x <= boxes.upper[b]))
               for b, o in enumerate(outcomes))


def test_the_attack_finds_a_counterexample_where_one_is_easy_to_find():
    """The check is not vacuous: a box whose whole corner region is wrong is broken."""
    net = torch.nn.Linear(N, K)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
        net.weight[1, 0] = 50.0  # class 1 wins once x_0 > 0.02
    lower, upper = -np.full((1, N), 0.1), np.full((1, N), 0.1)
    (outcome,) = attack_boxes(net, (N,), lower, upper, np.array([0]), K,
                              AttackSettings(restarts=4, steps=10, random_points=0,
                                             vertex_points=0), seed=0)
    assert outcome.found and outcome.method == "pgd" and outcome.x[0] > 0.02
