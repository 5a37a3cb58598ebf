"""The solver-neutral MILP model: its type, the builder that accumulates it, MPS/LP text.

:class:`MilpModel` is what :func:`hybridver.encode.milp.encode_milp` returns and every MILP
back end reads; :class:`ModelBuilder` collects variables and sparse rows (global column
indices) while an encoder runs, and :func:`format_mps` / :func:`format_lp` write the model
for external solvers.  Encoders (``milp.py``, ``envelopes.py``) build on this module; it
imports neither of them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from hybridver.encode.affine_form import Affine
from hybridver.ir.ops import OpKind
from hybridver.result import CandidateCounterexample

__all__ = ["EnvelopeSite", "SiteVars", "MilpModel", "ModelBuilder", "add_operand_vars",
           "add_definition_rows", "format_mps", "format_lp"]


@dataclasses.dataclass(frozen=True)
class EnvelopeSite:
    """A nonlinear node encoded by envelopes (a relaxation, not exact).

    ``z_vars``: ``(k,)`` operand variables, ``(k, 2)`` for a product of two variables;
    ``y_vars``: ``(k,)`` outputs; ``lower``/``upper``: operand bounds, same shape as
    ``z_vars``; ``breakpoints``: the split points used per element (refinement state).
    """

    node: str
    op: OpKind
    attrs: Mapping
    z_vars: np.ndarray
    y_vars: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    breakpoints: Mapping[int, tuple[float, ...]]


@dataclasses.dataclass(frozen=True)
class SiteVars:
    """Where one nonlinear node lives in the model: ``z_vars`` ``(k,)`` (``(k, 2)`` for a
    product) operand variables, ``y_vars`` ``(k,)`` outputs; ``operand``: the node whose
    value ``z`` is (unary sites); ``aux``: the range of variable indices added for this node
    (its ``z`` and binaries)."""

    node: str
    op: OpKind
    operand: str
    z_vars: np.ndarray
    y_vars: np.ndarray
    aux: tuple[int, int] = (0, 0)


@dataclasses.dataclass(frozen=True, eq=False)
class MilpModel:
    """``minimize objective . v`` s.t. ``row_lower <= A v <= row_upper``,
    ``var_lower <= v <= var_upper``, ``v[integer]`` integral.

    ``A``: CSR ``(n_rows, n_vars)``; ``input_vars``: ``(n_in,)`` indices of the flattened
    network input; ``output_vars``: ``(n_out,)``; ``margin_var``: index of ``t``;
    ``envelope_sites``: smooth nodes encoded by envelopes (empty: the encoding is exact);
    ``C``/``d``: the property's rows (``C o + d <= t``).
    """

    var_lower: np.ndarray
    var_upper: np.ndarray
    integer: np.ndarray
    var_names: tuple[str, ...]
    A: sp.csr_array
    row_lower: np.ndarray
    row_upper: np.ndarray
    row_names: tuple[str, ...]
    objective: np.ndarray
    input_vars: np.ndarray
    output_vars: np.ndarray
    margin_var: int
    C: np.ndarray
    d: np.ndarray
    envelope_sites: tuple[EnvelopeSite, ...] = ()
    sites: tuple["SiteVars", ...] = ()
    label: str = ""
    comments: tuple[str, ...] = ()

    @property
    def n_vars(self) -> int:
        return int(self.var_lower.size)

    @property
    def n_rows(self) -> int:
        return int(self.row_lower.size)

    @property
    def n_integer(self) -> int:
        return int(np.sum(self.integer))

    @property
    def exact(self) -> bool:
        """True when no envelope was used: the model is exact for the network."""
        return not self.envelope_sites

    # ------------------------------------------------------------------ solution mapping
    def input_point(self, values: np.ndarray) -> np.ndarray:
        """The network input ``(n_in,)`` of a solution vector ``(n_vars,)``."""
        return np.asarray(values, dtype=np.float64)[self.input_vars].copy()

    def predicted_output(self, values: np.ndarray) -> np.ndarray:
        """The model's output variables ``(n_out,)`` at a solution."""
        return np.asarray(values, dtype=np.float64)[self.output_vars].copy()

    def margin_at(self, values: np.ndarray) -> float:
        """``max_i (C o + d)_i`` at a solution, recomputed in float64 (-inf for no rows)."""
        if self.C.shape[0] == 0:
            return -math.inf
        return float(np.max(self.C @ self.predicted_output(values) + self.d))

    def to_candidate(self, values: np.ndarray, source: str) -> CandidateCounterexample:
        """The solution mapped back to the network input (still to be confirmed)."""
        return CandidateCounterexample(self.input_point(values), self.predicted_output(values),
                                       source)

    # ------------------------------------------------------------------ writers
    def to_mps(self, path: str | Path) -> None:
        """Write free-format MPS (names without spaces; explicit bounds for every column)."""
        Path(path).write_text(format_mps(self))

    def to_lp(self, path: str | Path) -> None:
        """Write CPLEX LP format."""
        Path(path).write_text(format_lp(self))


# ---------------------------------------------------------------------- building
class ModelBuilder:
    """Accumulates variables and rows (global column indices) before freezing a model."""

    def __init__(self) -> None:
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.names: list[str] = []
        self.n_vars = 0
        self._rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.row_lower: list[np.ndarray] = []
        self.row_upper: list[np.ndarray] = []
        self.row_names: list[str] = []
        self.n_rows = 0

    def add_vars(self, lower, upper, names: Sequence[str], integer: bool = False) -> np.ndarray:
        """New variables; returns their indices ``(k,)``."""
        lower = np.asarray(lower, dtype=np.float64).reshape(-1)
        upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), lower.shape).copy()
        k = lower.size
        if len(names) != k:
            raise ValueError("one name per variable")
        self.lower.append(lower.copy())
        self.upper.append(upper)
        self.integer.append(np.full(k, integer))
        self.names.extend(names)
        index = np.arange(self.n_vars, self.n_vars + k)
        self.n_vars += k
        return index

    def add_rows(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int,
                 lower, upper, prefix: str) -> None:
        """``n_rows`` rows given as COO triplets (``rows`` local to this block)."""
        if n_rows == 0:
            return
        vals = np.asarray(vals, dtype=np.float64)
        keep = vals != 0
        self._rows.append((np.asarray(rows, dtype=np.int64)[keep] + self.n_rows,
                           np.asarray(cols, dtype=np.int64)[keep], vals[keep]))
        self.row_lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64),
                                              (n_rows,)).copy())
        self.row_upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64),
                                              (n_rows,)).copy())
        self.row_names.extend(f"{prefix}_{self.n_rows + i}" for i in range(n_rows))
        self.n_rows += n_rows

    def add_matrix_rows(self, blocks: Sequence[tuple[sp.sparray | np.ndarray, np.ndarray]],
                        lower, upper, prefix: str) -> None:
        """Rows ``sum_b M_b @ v[cols_b]`` in ``[lower, upper]``; each ``M_b`` is ``(k, len(cols_b))``
        (sparse or dense) and ``cols_b`` are global variable indices."""
        rows, cols, vals = [], [], []
        k = None
        for M, index in blocks:
            coo = sp.coo_array(M)
            k = coo.shape[0] if k is None else k
            if coo.shape[0] != k:
                raise ValueError("blocks differ in row count")
            keep = coo.data != 0
            rows.append(coo.row[keep])
            cols.append(np.asarray(index, dtype=np.int64)[coo.col[keep]])
            vals.append(coo.data[keep])
        self.add_rows(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), k or 0,
                      lower, upper, prefix)

    def tighten(self, index: np.ndarray, lower=None, upper=None) -> None:
        lo, hi = self._bounds()
        if lower is not None:
            lo[index] = np.maximum(lo[index], lower)
        if upper is not None:
            hi[index] = np.minimum(hi[index], upper)
        self.lower, self.upper = [lo], [hi]
        self.integer = [np.concatenate(self.integer)] if self.integer else []

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.concatenate(self.lower) if self.lower else np.zeros(0),
                np.concatenate(self.upper) if self.upper else np.zeros(0))

    def bounds_of(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self._bounds()
        return lo[index], hi[index]

    def build(self, **fields) -> MilpModel:
        lo, hi = self._bounds()
        if self._rows:
            r = np.concatenate([b[0] for b in self._rows])
            c = np.concatenate([b[1] for b in self._rows])
            v = np.concatenate([b[2] for b in self._rows])
        else:
            r = c = np.zeros(0, dtype=np.int64)
            v = np.zeros(0)
        A = sp.csr_array(sp.coo_array((v, (r, c)), shape=(self.n_rows, self.n_vars)))
        A.sum_duplicates()
        integer = np.concatenate(self.integer) if self.integer else np.zeros(0, dtype=bool)
        objective = np.zeros(self.n_vars)
        objective[fields["margin_var"]] = 1.0
        return MilpModel(var_lower=lo, var_upper=hi, integer=integer, var_names=tuple(self.names),
                         A=A, row_lower=np.concatenate(self.row_lower or [np.zeros(0)]),
                         row_upper=np.concatenate(self.row_upper or [np.zeros(0)]),
                         row_names=tuple(self.row_names), objective=objective, **fields)


def add_definition_rows(b: ModelBuilder, new_vars: np.ndarray, expr: Affine,
                         prefix: str) -> None:
    """Equality rows ``new_vars - A v = b`` (coefficients copied, nothing rounded)."""
    k = expr.size
    A = sp.coo_array(expr.A)
    b.add_matrix_rows([(-A, np.arange(A.shape[1])),
                       (sp.identity(k, format="coo"), new_vars)], expr.b, expr.b, prefix)


def add_operand_vars(b: ModelBuilder, s: int, expr: Affine, lower: np.ndarray,
                     upper: np.ndarray, tag: str = "z") -> np.ndarray:
    """Pre-activation variables ``z = A v + b`` with their sound bounds."""
    z = b.add_vars(lower, upper, [f"{tag}{s}_{i}" for i in range(expr.size)])
    add_definition_rows(b, z, expr, f"def{tag}{s}")
    return z


def _num(v: float) -> str:
    """Shortest text that reads back as exactly the same float64."""
    return repr(float(v))


def _split_rows(model: MilpModel):
    """Rows as (name, sense, rhs, cols, vals) with sense in 'E', 'L', 'G'; a row with two
    different finite sides becomes two rows (``<name>_lo``, ``<name>_hi``), so no range
    has to be computed (and rounded)."""
    A = model.A
    for i in range(model.n_rows):
        cols = A.indices[A.indptr[i]:A.indptr[i + 1]]
        vals = A.data[A.indptr[i]:A.indptr[i + 1]]
        lo, hi, name = model.row_lower[i], model.row_upper[i], model.row_names[i]
        if lo == hi:
            yield name, "E", lo, cols, vals
        elif np.isfinite(lo) and np.isfinite(hi):
            yield name + "_lo", "G", lo, cols, vals
            yield name + "_hi", "L", hi, cols, vals
        elif np.isfinite(hi):
            yield name, "L", hi, cols, vals
        elif np.isfinite(lo):
            yield name, "G", lo, cols, vals


def format_mps(model: MilpModel) -> str:
    """Free-format MPS text of the model (minimization; ``OBJ`` is the objective row)."""
    rows = list(_split_rows(model))
    lines = [f"* {c}" for c in model.comments]
    lines += ["NAME hybridver", "ROWS", " N OBJ"]
    lines += [f" {sense} {name}" for name, sense, _, _, _ in rows]
    by_col: list[list[tuple[str, float]]] = [[] for _ in range(model.n_vars)]
    for name, _, _, cols, vals in rows:
        for c, v in zip(cols, vals):
            by_col[c].append((name, v))
    for j in np.nonzero(model.objective)[0]:
        by_col[j].insert(0, ("OBJ", model.objective[j]))
    lines.append("COLUMNS")
    in_int = False
    for j in range(model.n_vars):
        if model.integer[j] != in_int:
            in_int = bool(model.integer[j])
            lines.append(f" MARKER 'MARKER' {'INTORG' if in_int else 'INTEND'!r}")
        name = model.var_names[j]
        entries = by_col[j] or [("OBJ", 0.0)]
        lines += [f" {name} {row} {_num(v)}" for row, v in entries]
    if in_int:
        lines.append(" MARKER 'MARKER' 'INTEND'")
    lines.append("RHS")
    lines += [f" RHS {name} {_num(rhs)}" for name, _, rhs, _, _ in rows if rhs != 0]
    lines.append("BOUNDS")
    for j in range(model.n_vars):
        name, lo, hi = model.var_names[j], model.var_lower[j], model.var_upper[j]
        if lo == hi:
            lines.append(f" FX BND {name} {_num(lo)}")
        elif np.isneginf(lo) and np.isposinf(hi):
            lines.append(f" FR BND {name}")
        else:
            lines.append(f" MI BND {name}" if np.isneginf(lo) else f" LO BND {name} {_num(lo)}")
            lines.append(f" PL BND {name}" if np.isposinf(hi) else f" UP BND {name} {_num(hi)}")
    lines.append("ENDATA")
    return "\n".join(lines) + "\n"


def _lp_terms(cols, vals, names) -> list[str]:
    terms = [f"{'-' if v < 0 else '+'} {_num(abs(v))} {names[c]}" for c, v in zip(cols, vals)]
    return terms or ["+ 0 t"]


def format_lp(model: MilpModel) -> str:
    """CPLEX LP text of the model (long rows wrapped, eight terms a line)."""
    names = model.var_names
    lines = [f"\\ {c}" for c in model.comments]
    obj = np.nonzero(model.objective)[0]
    lines += ["Minimize", " obj: " + " ".join(_lp_terms(obj, model.objective[obj], names)),
              "Subject To"]
    for name, sense, rhs, cols, vals in _split_rows(model):
        terms = _lp_terms(cols, vals, names)
        op = {"E": "=", "L": "<=", "G": ">="}[sense]
        chunks = [" ".join(terms[i:i + 8]) for i in range(0, len(terms), 8)]
        lines.append(f" {name}: " + "\n   ".join(chunks) + f" {op} {_num(rhs)}")
    lines.append("Bounds")
    for j in range(model.n_vars):
        lo, hi = model.var_lower[j], model.var_upper[j]
        if lo == hi:
            lines.append(f" {names[j]} = {_num(lo)}")
        elif np.isneginf(lo) and np.isposinf(hi):
            lines.append(f" {names[j]} free")
        else:
            left = "-inf" if np.isneginf(lo) else _num(lo)
            right = "+inf" if np.isposinf(hi) else _num(hi)
            lines.append(f" {left} <= {names[j]} <= {right}")
    ints = [names[j] for j in np.nonzero(model.integer)[0]]
    if ints:
        lines.append("General")
        lines += [" " + " ".join(ints[i:i + 10]) for i in range(0, len(ints), 10)]
    lines.append("End")
    return "\n".join(lines) + "\n"
