"""The reader's fast path for flat runs of simple atoms (VNN-LIB files with thousands of
boxes, nn4sys): the same Spec as the general parse, the same error positions, and each
distinct atom read once."""

from __future__ import annotations

import numpy as np
import pytest

from hybridver.errors import SpecError
from hybridver.specs import parse_vnnlib
from hybridver.specs import vnnlib_parse

HEADER = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n"
          "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n")


def _boxes(n: int, nested: bool) -> str:
    """``n`` cases, one line each; ``nested`` wraps every atom in its own ``(and ...)``
    so that no run of simple atoms is flat (the general parse)."""
    lines = []
    for k in range(n):
        atoms = [f"(>= X_0 {k / 10})", f"(<= X_0 {k / 10 + 0.25})", "(>= X_1 -1)",
                 "(<= X_1 1.0)", f"(<= Y_0 {k}.5)", "(>= Y_1 0.1)"]
        if nested:
            atoms = [f"(and {a})" for a in atoms]
        lines.append("(and " + " ".join(atoms) + ")")
    return HEADER + "(assert (or\n" + "\n".join(lines) + "\n))\n"


def test_flat_runs_give_the_spec_of_the_general_parse():
    flat, nested = parse_vnnlib(_boxes(40, False)), parse_vnnlib(_boxes(40, True))
    assert flat == nested
    assert len(flat.cases) == 40
    box = flat.cases[3].region
    assert box.lower[0] == 0.3 and box.upper[0] == pytest.approx(0.55)
    assert box.exact_lower == nested.cases[3].region.exact_lower   # 0.3 kept exact
    assert box.exact_lower and box.exact_lower[0][0] == 0


@pytest.mark.parametrize("formula", [
    "(not (or (> Y_0 1) (< Y_1 -1) (= Y_0 Y_1)))",
    "(not (and (> Y_0 1) (< Y_1 -1) (<= Y_0 Y_1)))",
    "(or (> Y_0 1) (< Y_1 -1) (= Y_0 Y_1))",
    "(and (> Y_0 1) (= Y_1 -1))",
])
def test_flat_runs_under_not_and_or_read_as_the_general_parse(formula):
    box = "(assert (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1)))\n"
    nested = formula.replace("(> ", "(and (> ").replace("(< ", "(and (< ") \
        .replace("(= ", "(and (= ").replace("(<= Y", "(and (<= Y")
    nested = nested.replace(" 1)", " 1))").replace(" -1)", " -1))").replace("Y_1)", "Y_1))")
    flat_spec = parse_vnnlib(HEADER + box + f"(assert {formula})")
    nested_spec = parse_vnnlib(HEADER + box + f"(assert {nested})")
    assert flat_spec == nested_spec
    assert flat_spec.cases


def test_each_distinct_atom_is_read_once(monkeypatch):
    calls = []
    real = vnnlib_parse.Parser.simple_relation

    def counted(self, op, i, pos):
        calls.append((op, i))
        return real(self, op, i, pos)

    monkeypatch.setattr(vnnlib_parse.Parser, "simple_relation", counted)
    line = "(and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (<= Y_0 2))"
    spec = parse_vnnlib(HEADER + "(assert (or\n" + "\n".join([line] * 200) + "\n))\n")
    assert len(spec.cases) == 1
    assert len(calls) == 5


@pytest.mark.parametrize("atom, col, fragment", [
    ("(<= X_7 1)", 13, "undeclared variable 'X_7'"),
    ("(<= X_0 X_1)", 9, "several input variables (X_0, X_1)"),
    ("(<= X_0 Y_1)", 9, "mixing input (X) and output (Y)"),
    ("(<= X_0 1e99999)", 17, "exponents beyond"),
])
def test_errors_inside_a_long_flat_run_keep_their_position(atom, col, fragment):
    filler = " ".join(["(>= X_0 0) (<= X_0 1)"] * 50)
    text = HEADER + "(assert (or\n(and " + filler + ")\n(and (>= X_1 0)\n" \
        + " " * 4 + atom + " (<= X_1 1))\n))\n"
    with pytest.raises(SpecError) as info:
        parse_vnnlib(text)
    err = info.value
    assert fragment in str(err)
    assert (err.line, err.column) == (8, 4 + col - 8), str(err)


def test_unbalanced_flat_run_is_reported_as_before():
    text = HEADER + "(assert (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1)"
    with pytest.raises(SpecError, match="never closed"):
        parse_vnnlib(text)


def test_many_cases_spec_round_trips_through_the_writer(tmp_path):
    from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase
    from hybridver.specs.vnnlib import write_vnnlib
    rng = np.random.default_rng(0)
    cases = []
    for k in range(300):
        lo = np.round(rng.uniform(-1, 0, 2), 3)
        cases.append(SpecCase(InputBox(lo, lo + 0.5), (
            OutputConstraints(np.array([[1.0, 0.0]]), np.array([-float(k)])),
            OutputConstraints(np.array([[0.0, -1.0]]), np.array([0.1 * k])))))
    spec = Spec(tuple(cases), 2, 2)
    assert parse_vnnlib(write_vnnlib(spec, tmp_path / "many.vnnlib.gz")) == spec
