"""``hybridver plant``: generate a benchmark with hidden counterexamples.

Per architecture, one model.  A try draws boxes (:mod:`plant_data`), builds the model
(:mod:`plant_models`; with ``branch`` on, wrapped in a
:class:`~hybridver.soundness.plant_models.PlantedNet` whose bumps sit on the planted
vertices), trains it (:mod:`plant_train`), exports it to ONNX and checks it:

* every planted vertex is a counterexample of its box's property as the VNN-LIB file
  reads back (:func:`hybridver.specs.parse_vnnlib`), confirmed on onnxruntime by
  :func:`hybridver.result.confirm_counterexample`, with ``max(C y + d) <= -min_margin``
  (a violation no float rounding explains);
* the check attack (:mod:`plant_attack`) finds NO counterexample in any planted box: an
  attacker sees the property as robust, only the planted vertex breaks it;
* at least ``clean`` unplanted boxes resist the attack and have their center classified
  as their label on onnxruntime; those become the clean instances (expected ``unknown``:
  nobody has proven them).

A model that fails a check is trained again from a new seed, up to ``tries`` times; one
that never passes is left out of the benchmark and reported.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hybridver.errors import HybridverInputError
from hybridver.frontends import OnnxRuntimeModel
from hybridver.progress import NullProgress, Progress
from hybridver.result import CandidateCounterexample, confirm_counterexample
from hybridver.soundness.plant_attack import AttackSettings, attack_boxes
from hybridver.soundness.plant_data import Boxes, make_boxes
from hybridver.soundness.plant_models import (ARCHITECTURES, DEFAULT_ARCHITECTURES, PlantedNet,
                                              build_model, input_shape)
from hybridver.soundness.plant_train import TrainSettings, train_model
from hybridver.soundness.plant_write import (box_spec, export_onnx, write_report,
                                             write_tables, write_witnesses)
from hybridver.specs import format_vnnlib, parse_vnnlib, write_vnnlib

__all__ = ["PlantSettings", "PlantSummary", "plant_benchmark", "check_settings"]


@dataclasses.dataclass(frozen=True)
class PlantSettings:
    """What ``hybridver plant`` generates; counts are per model."""

    archs: tuple[str, ...] = DEFAULT_ARCHITECTURES
    input_dim: int = 16
    n_classes: int = 3
    eps: float = 0.1
    planted: int = 3
    clean: int = 2
    normal: int = 12  # unplanted boxes per model (at least 2 * clean; clean ones come from them)
    width: int = 32
    seed: int = 0
    timeout_s: float = 60.0  # written into the CSV files
    tries: int = 3
    threads: int = 1  # torch threads while training and attacking
    min_margin: float = 0.01  # each witness violates by at least this on onnxruntime
    branch: bool = True  # side branch of vertex bumps (PlantedNet); off: the plain model
    bump_depth: float = 1.0  # a bump is nonzero within this L1 distance (half-widths)
    bump_gain: float = 4.0  # a bump's height at the vertex is gain * depth
    train: TrainSettings = TrainSettings()
    attack: AttackSettings = AttackSettings()


@dataclasses.dataclass(frozen=True)
class PlantSummary:
    """What was written: counts, the time, where the files are."""

    out_dir: Path
    sealed: Path
    models: int
    planted: int
    clean: int
    failed_models: tuple[str, ...]
    time_s: float


def check_settings(settings: PlantSettings) -> None:
    """Refuse settings that cannot make a benchmark, with one readable line."""
    unknown = [a for a in settings.archs if a not in ARCHITECTURES]
    if unknown:
        raise HybridverInputError(f"unknown architecture {unknown[0]!r} (known: "
                                  f"{', '.join(ARCHITECTURES)})")
    if not settings.archs:
        raise HybridverInputError("no architecture given")
    if settings.input_dim < 2 or settings.n_classes < 2:
        raise HybridverInputError("--input-dim and --classes must be at least 2")
    samples = settings.attack.vertex_points
    need = math.ceil(math.log2(4 * max(1, samples)))
    if settings.planted and settings.input_dim < need:
        raise HybridverInputError(
            f"--input-dim {settings.input_dim}: a planted vertex cannot hide among "
            f"{2 ** settings.input_dim} vertices from {samples} sampled ones; use at least "
            f"{need} inputs")
    if not 0 < settings.eps <= 0.25:
        raise HybridverInputError(f"--eps must be in (0, 0.25], not {settings.eps:g} (the "
                                  "boxes sit around points in [-1, 1]^n and must not overlap)")
    if settings.planted < 0 or settings.clean < 0 or settings.planted + settings.clean == 0:
        raise HybridverInputError("--planted and --clean must be >= 0, and not both 0")
    if not 0 < settings.bump_depth < 2:
        raise HybridverInputError("bump_depth must be in (0, 2): a bump must stay inside "
                                  "its own box's neighbourhood")
    if settings.train.epochs < 1:
        raise HybridverInputError("--epochs must be at least 1")


def _seed(settings: PlantSettings, model: int, attempt: int) -> int:
    """The seed of one try of one model, from the run's seed."""
    return int(np.random.SeedSequence([settings.seed, model, attempt]).generate_state(1)[0])


def _witness(ort: OnnxRuntimeModel, boxes: Boxes, p: int, n_classes: int,
             min_margin: float) -> tuple[dict | None, str]:
    """Confirm planted box ``p``'s vertex on onnxruntime against its VNN-LIB text as read
    back; ``({"x", "y", "margin"}, "")`` or ``(None, why)``."""
    spec = box_spec(boxes.lower[p], boxes.upper[p], int(boxes.label[p]), n_classes, "check")
    read = parse_vnnlib(format_vnnlib(spec), n_inputs=boxes.lower.shape[1],
                        n_outputs=n_classes)
    vertex = boxes.vertices()[p]
    cex = confirm_counterexample(CandidateCounterexample(vertex, np.zeros(n_classes), "plant"),
                                 read, ort, ort.input_shape, checked_by="onnxruntime")
    if cex is None:
        return None, "the planted vertex is not a counterexample on onnxruntime"
    if not np.array_equal(cex.x, vertex):
        return None, "the planted vertex moved when rounded to float32"
    margin = min(float(np.max(dj.C @ cex.y + dj.d)) for dj in read.cases[0].disjuncts)
    if margin > -min_margin:
        return None, f"the planted vertex violates by {-margin:.3g} < {min_margin:g}"
    return {"x": cex.x.tolist(), "y": cex.y.tolist(), "margin": margin}, ""


def _try_model(arch: str, index: int, attempt: int, settings: PlantSettings, onnx_path: Path,
               progress: Progress) -> dict:
    """One try: train, export to ``onnx_path``, check.  Returns the try's record; ``ok``
    says whether it passed."""
    seed = _seed(settings, index, attempt)
    rng = np.random.default_rng(seed)
    n, k = settings.input_dim, settings.n_classes
    n_normal = max(settings.normal, 2 * settings.clean)
    boxes = make_boxes(n, k, settings.eps, settings.planted, n_normal, rng)
    shape = input_shape(arch, n)
    model = build_model(arch, shape, k, settings.width, seed)
    if settings.branch and settings.planted:
        model = PlantedNet(model, n, k, settings.planted)
        p = settings.planted
        model.set_corners(boxes.lower[:p], boxes.upper[:p], boxes.sign[:p],
                          settings.bump_depth, settings.bump_gain)
    epochs = settings.train.epochs
    progress.phase(f"train {arch} (try {attempt + 1})")
    progress.update(epoch=f"0/{epochs}", loss="-")
    trained = train_model(model, shape, boxes, settings.train, seed,
                          lambda epoch, loss: progress.update(epoch=f"{epoch}/{epochs}",
                                                              loss=f"{loss:.3g}"))
    record = {"arch": arch, "try": attempt + 1, "seed": seed, "train_time_s": trained.time_s,
              "final_loss": trained.loss, "ok": False, "why": ""}
    export_onnx(model, shape, onnx_path)
    ort = OnnxRuntimeModel(onnx_path)
    progress.phase(f"check {arch} (try {attempt + 1})")
    witnesses = []
    for p in range(boxes.n_planted):
        found, why = _witness(ort, boxes, p, k, settings.min_margin)
        if found is None:
            record["why"] = f"planted box {p}: {why}"
            return record
        witnesses.append(found)
    t0 = time.perf_counter()
    outcomes = attack_boxes(model, shape, boxes.lower, boxes.upper, boxes.label, k,
                            settings.attack, seed + 1)
    record["attack_time_s"] = time.perf_counter() - t0
    record["attack"] = [{"box": b, "planted": b < boxes.n_planted, "found": o.found,
                         "best_violation": o.best, "method": o.method}
                        for b, o in enumerate(outcomes)]
    broken = [b for b in range(boxes.n_planted) if outcomes[b].found]
    if broken:
        first = outcomes[broken[0]]
        record["why"] = (f"the attack found a counterexample in planted box {broken[0]} "
                         f"(violation {first.best:.3g}, {first.method})")
        return record
    centers = ort(boxes.center.reshape(-1, *ort.input_shape)).reshape(len(boxes.label), -1)
    clean = [b for b in range(boxes.n_planted, boxes.n_boxes)
             if not outcomes[b].found and int(np.argmax(centers[b])) == boxes.label[b]
             and np.sum(centers[b] == centers[b].max()) == 1][:settings.clean]
    if len(clean) < settings.clean:
        record["why"] = (f"only {len(clean)} unplanted boxes resist the attack "
                         f"({settings.clean} wanted)")
        return record
    record.update(ok=True, boxes=boxes, witnesses=witnesses, clean_boxes=clean,
                  plant_violation_torch=trained.plant_violation.tolist())
    return record


def _model_names(archs: tuple[str, ...]) -> list[str]:
    """File stems: the architecture, with ``_2``, ``_3``... for repeats."""
    seen: dict[str, int] = {}
    names = []
    for arch in archs:
        seen[arch] = seen.get(arch, 0) + 1
        names.append(arch if seen[arch] == 1 else f"{arch}_{seen[arch]}")
    return names


def _write_instances(out_dir: Path, name: str, record: dict, settings: PlantSettings,
                     rng: random.Random) -> tuple[list[dict], list[dict]]:
    """The model's VNN-LIB files (planted and clean in a shuffled order); returns the CSV
    rows and the sealed witnesses."""
    boxes: Boxes = record["boxes"]
    order = list(range(boxes.n_planted)) + list(record["clean_boxes"])
    rng.shuffle(order)
    rows, witnesses = [], []
    for j, b in enumerate(order):
        vnnlib = f"vnnlib/{name}_prop_{j}.vnnlib"
        spec = box_spec(boxes.lower[b], boxes.upper[b], int(boxes.label[b]),
                        settings.n_classes, f"{name}_prop_{j}")
        write_vnnlib(spec, out_dir / vnnlib)
        planted = b < boxes.n_planted
        rows.append({"onnx": f"onnx/{name}.onnx", "vnnlib": vnnlib,
                     "expected": "sat" if planted else "unknown"})
        if planted:
            witnesses.append({"onnx": f"onnx/{name}.onnx", "vnnlib": vnnlib,
                              **record["witnesses"][b]})
    return rows, witnesses


def plant_benchmark(out_dir: str | Path, settings: PlantSettings = PlantSettings(),
                    sealed: str | Path | None = None, force: bool = False,
                    progress: Progress | None = None) -> PlantSummary:
    """Generate the benchmark into ``out_dir`` and its witnesses into ``sealed`` (default
    ``<out_dir>-sealed/witnesses.json``, which must lie outside ``out_dir``).  A non-empty
    ``out_dir`` is replaced only with ``force``, and only when it holds an earlier
    benchmark (its ``plant_report.json``)."""
    t0 = time.perf_counter()
    check_settings(settings)
    progress = NullProgress() if progress is None else progress
    out_dir = Path(out_dir)
    if sealed is None:
        sealed = out_dir.resolve().parent / f"{out_dir.resolve().name}-sealed" / "witnesses.json"
    sealed = Path(sealed)
    if sealed.resolve().is_relative_to(out_dir.resolve()):
        raise HybridverInputError(f"--sealed {sealed} lies inside {out_dir}: a tool handed "
                                  "the benchmark folder could read the witnesses")
    if out_dir.exists() and not out_dir.is_dir():
        raise HybridverInputError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise HybridverInputError(f"{out_dir} exists and is not empty (use --force to "
                                      "replace it)")
        if not (out_dir / "plant_report.json").is_file():
            raise HybridverInputError(f"{out_dir} is not empty and holds no planted benchmark "
                                      "(no plant_report.json): not deleting it")
        shutil.rmtree(out_dir)
    (out_dir / "onnx").mkdir(parents=True, exist_ok=True)
    (out_dir / "vnnlib").mkdir(exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)  # tiny models: one thread beats several
    rows, witnesses, models, failed = [], [], [], []
    shuffle = random.Random(settings.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for index, (arch, name) in enumerate(zip(settings.archs, _model_names(settings.archs))):
            tries = []
            for attempt in range(settings.tries):
                record = _try_model(arch, index, attempt, settings, Path(tmp) / f"{name}.onnx",
                                    progress)
                tries.append({key: value for key, value in record.items()
                              if key not in ("boxes", "witnesses", "clean_boxes")})
                if record["ok"]:
                    break
                progress.log(f"{name}: try {attempt + 1} rejected: {record['why']}")
            models.append({"name": name, "arch": arch, "tries": tries, "kept": record["ok"]})
            if not record["ok"]:
                failed.append(name)
                continue
            shutil.copyfile(Path(tmp) / f"{name}.onnx", out_dir / "onnx" / f"{name}.onnx")
            new_rows, new_witnesses = _write_instances(out_dir, name, record, settings, shuffle)
            rows += new_rows
            witnesses += new_witnesses
            models[-1]["instances"] = [r["vnnlib"] for r in new_rows]
    torch.set_num_threads(threads)
    write_tables(out_dir, rows, settings.timeout_s)
    write_witnesses(sealed, out_dir.resolve().name, witnesses)
    n_planted = sum(r["expected"] == "sat" for r in rows)
    summary = PlantSummary(out_dir, sealed, len(models) - len(failed), n_planted,
                           len(rows) - n_planted, tuple(failed), time.perf_counter() - t0)
    write_report(out_dir / "plant_report.json", {
        "settings": dataclasses.asdict(settings), "models": models,
        "counts": {"models": summary.models, "failed_models": list(failed),
                   "instances": len(rows), "planted": summary.planted,
                   "clean": summary.clean},
        "time_s": summary.time_s, "sealed": "outside the benchmark folder"})
    return summary
