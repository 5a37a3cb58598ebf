"""One fuzz case of each fuzzer, reproducible from ``(seed, index)`` alone.

``run_case(fuzzer, seed, index)`` draws the case from ``numpy.random.default_rng([seed,
index])``, runs its oracle and returns a :class:`CaseResult` (finding, a short label, the
ONNX model and the drawn configuration), used by both the fast tests (fixed seeds) and
``benchmarks/fuzz.py`` (long runs).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tests.fuzz.oracles import Finding

FUZZERS = ("import", "backends", "bounds")

#: Semantic gaps found by the importer fuzzer and still open, by name: a predicate over a
#: case's steps.  A disagreement whose case contains one is reported as "known" (still a
#: disagreement, never an agreement).  None is open: the gaps met so far (narrowing casts,
#: Resize nearest modes, ConvTranspose auto_pad, dilated MaxPool and negative-padding
#: AveragePool under auto_pad SAME) are matched or refused, so they would show up again as
#: unexplained.
KNOWN_GAPS: dict = {}


@dataclasses.dataclass
class CaseResult:
    finding: Finding
    label: str
    model: bytes
    spec: dict
    known: str = ""


def known_gap(steps: list[dict]) -> str:
    """The name of the known gap a case's steps contain ('' if none)."""
    for name, matches in KNOWN_GAPS.items():
        if any(matches(step) for step in steps):
            return name
    return ""


def _import_case(rng) -> CaseResult:
    from tests.fuzz.import_cases import import_case
    from tests.fuzz.oracles import check_import, describe_ops

    case = import_case(rng)
    finding = check_import(case, seed=int(rng.integers(2**31)))
    spec = {"steps": case.spec, "input_shape": list(case.input_shape),
            "range": [case.low, case.high]}
    known = known_gap(case.spec) if finding.kind == "disagree" else ""
    return CaseResult(finding, describe_ops(case.spec), case.model, spec, known)


def _backends_case(rng, timeout: float) -> CaseResult:
    from tests.fuzz.backend_oracle import check_backends, planted_instance
    from tests.fuzz.networks import random_network

    net = random_network(rng)
    inst = planted_instance(rng, net)
    label = "+".join(net.spec["activations"])
    if inst is None:
        return CaseResult(Finding("invalid", "no instance could be planted"), label,
                          net.model, net.spec)
    spec = {**net.spec, "expected": inst.expected, "box": [inst.lo.tolist(), inst.hi.tolist()],
            "C": inst.C.tolist(), "d": inst.d.tolist(), **inst.spec}
    return CaseResult(check_backends(net, inst, timeout=timeout), f"{label} ({inst.expected})",
                      net.model, spec)


def _bounds_case(rng) -> CaseResult:
    from tests.fuzz.bounds_oracle import check_bounds
    from tests.fuzz.networks import PIECEWISE_LINEAR, SMOOTH, random_network

    net = random_network(rng, PIECEWISE_LINEAR + SMOOTH)
    finding, info = check_bounds(net, rng)
    return CaseResult(finding, "+".join(net.spec["activations"]), net.model,
                      {**net.spec, **info})


def run_case(fuzzer: str, seed: int, index: int, timeout: float = 10.0) -> CaseResult:
    """Case ``index`` of ``fuzzer`` under ``seed``; ``timeout``: per verify call (back ends)."""
    rng = np.random.default_rng([seed, index])
    if fuzzer == "import":
        return _import_case(rng)
    if fuzzer == "backends":
        return _backends_case(rng, timeout)
    if fuzzer == "bounds":
        return _bounds_case(rng)
    raise ValueError(f"unknown fuzzer {fuzzer!r} (known: {', '.join(FUZZERS)})")
