"""One local Lipschitz computation: the lower bound (sampling and ascent), the upper bound
(Jacobian bounds with branch-and-bound on the input box), the exact value of ReLU networks
(MILP), the naive bound, under one time limit."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from hybridver.ir.graph import NetworkGraph
from hybridver.ir.ops import OpKind
from hybridver.lipschitz.exact import exact_row
from hybridver.lipschitz.jacobian import PreparedChain
from hybridver.lipschitz.network import (LipschitzInputError, extract_chain, naive_bound,
                                         objective_rows)
from hybridver.lipschitz.options import InputNorm, LipschitzConfig
from hybridver.lipschitz.sampling import Witness, certified_norms, sampled_lower_bound
from hybridver.lipschitz.search import search_upper

__all__ = ["LipschitzResult", "local_lipschitz"]


def _unstable(graph: NetworkGraph, chain, lower: np.ndarray, upper: np.ndarray) -> int:
    """ReLUs whose input interval over the box (the bound engine's) contains 0."""
    from hybridver.bounds.engine import compute_bounds
    from hybridver.bounds.options import BoundConfig

    if not chain.activations:
        return 0
    shape = graph.input_node.shape
    res = compute_bounds(graph, lower.reshape(1, *shape), upper.reshape(1, *shape),
                         config=BoundConfig(dtype="float64"))
    return sum(int(((res.intervals[a.pre].lower <= 0) & (res.intervals[a.pre].upper >= 0))
                   .sum()) for a in chain.activations)


@dataclasses.dataclass(frozen=True)
class LipschitzResult:
    """Bounds of the local Lipschitz constant over the box, from the input ``norm`` to
    the max over the rows (outputs, one output, or a margin) of ``|c . (f(x) - f(y))|``.

    ``upper`` (sound), ``lower`` (the certified gradient norm at ``witness``, a point of
    the box where the network is differentiable), ``exact`` (the MILP's value, see
    :mod:`hybridver.lipschitz.exact`, or, ``exact_source = "bab"``, the attained ``lower``
    when ``upper`` is within ``config.rel_gap`` of it; else None), ``naive`` (product of
    operator norms),
    ``row_upper``: per row; ``boxes``: leaves of the input branch-and-bound;
    ``complete``: it closed every leaf; ``times``: seconds per stage; ``exact_status``:
    the MILP's status per row solved.
    """

    upper: float
    lower: float
    exact: float | None
    exact_source: str | None
    naive: float
    norm: str
    time_s: float
    row_upper: tuple[float, ...]
    witness: tuple[float, ...]
    witness_row: int
    boxes: int
    complete: bool
    times: dict
    exact_status: tuple[str, ...]

    def to_json(self) -> dict:
        """The JSON report: ``upper lower exact norm time_s naive`` and the rest."""
        data = dataclasses.asdict(self)
        data["witness"] = list(self.witness)
        data["row_upper"] = list(self.row_upper)
        data["exact_status"] = list(self.exact_status)
        return data


def _improve(chain, prep, rows, q, best: Witness, points: list[np.ndarray],
             lower: np.ndarray, upper: np.ndarray) -> Witness:
    """``best``, or the best certified gradient norm among ``points`` if larger (clipped
    to the box first: a solver's point may leave it by its tolerance)."""
    if not points:
        return best
    pts = np.clip(np.stack(points), lower, upper)
    val, _ = certified_norms(chain, prep, torch.as_tensor(pts), rows, q)
    p, r = divmod(int(torch.argmax(val)), val.shape[1])
    if float(val[p, r]) > best.value:
        return Witness(float(val[p, r]), pts[p].copy(), r)
    return best


def _exact(chain, lower, upper, rows_np, row_upper, root, q, deadline):
    """``(exact or None, statuses, points)``: the MILP row by row, largest upper bound
    first; rows whose upper bound is below the best value found are pruned."""
    pre = [(lo[0].numpy(), hi[0].numpy()) for lo, hi in root.pre]
    found, statuses, points = 0.0, [], []
    for i in np.argsort(-row_upper):
        if row_upper[i] <= found:  # cannot beat the best row
            statuses.append(f"row {i}: pruned")
            continue
        inner = [(lo[0, i].numpy(), hi[0, i].numpy()) for lo, hi in root.grad.inner]
        res = exact_row(chain, lower, upper, rows_np[i], pre, inner, q,
                        deadline - time.monotonic())
        statuses.append(f"row {i}: {res.status}")
        if res.x is not None:
            points.append(res.x)
        if res.value is None:
            return None, statuses, points
        found = max(found, res.value)
    return found, statuses, points


def local_lipschitz(graph: NetworkGraph, lower: np.ndarray, upper: np.ndarray, *,
                    norm: str | InputNorm = InputNorm.INF, output: int | None = None,
                    margin: tuple[int, int] | None = None,
                    config: LipschitzConfig = LipschitzConfig(),
                    timeout_s: float = 60.0) -> LipschitzResult:
    """Bounds of the local Lipschitz constant of ``graph`` over the box ``[lower, upper]``
    (flattened input, ``(n_in,)``).  Raises :class:`LipschitzInputError` for models or
    options it cannot handle."""
    start = time.monotonic()
    deadline = start + timeout_s
    try:
        norm = norm if isinstance(norm, InputNorm) else InputNorm(str(norm))
    except ValueError:
        raise LipschitzInputError(f"--norm must be inf, 2 or 1, not {norm!r}") from None
    q = norm.dual
    chain = extract_chain(graph)
    lower = np.array(lower, dtype=np.float64).ravel()  # copies: writable, ours
    upper = np.array(upper, dtype=np.float64).ravel()
    if lower.shape != (chain.n_in,) or upper.shape != (chain.n_in,):
        raise LipschitzInputError(f"the box has {lower.size} inputs, the model {chain.n_in}")
    if not np.all(lower <= upper):
        raise LipschitzInputError("the box has a lower bound above its upper bound")
    rows_np = objective_rows(chain.n_out, output, margin)
    rows = torch.as_tensor(rows_np)
    prep = PreparedChain.of(chain)
    times = {}
    t = time.monotonic()
    best = sampled_lower_bound(chain, prep, lower, upper, rows, q, config.samples,
                               config.ascent_steps, config.seed, config.local_rounds,
                               t + config.lower_share * timeout_s)
    times["lower_s"] = time.monotonic() - t
    t = time.monotonic()
    share = t + config.bab_share * max(0.0, deadline - t)
    milp_wanted = (config.milp and chain.kinds <= {OpKind.RELU} and q != 2.0
                   and _unstable(graph, chain, lower, upper) <= config.milp_max_unstable)

    def score(points: np.ndarray) -> float:
        val, _ = certified_norms(chain, prep, torch.as_tensor(points), rows, q)
        return float(val.max())

    outcome = search_upper(graph, chain, prep, rows, lower, upper, q, config,
                           share if milp_wanted else deadline, best.value, score)
    times["upper_s"] = time.monotonic() - t
    row_upper = outcome.upper
    best = _improve(chain, prep, rows, q, best, outcome.centre_points, lower, upper)
    exact, statuses = None, []
    t = time.monotonic()
    closed = row_upper.max() <= best.value * (1 + config.rel_gap)
    if milp_wanted and not closed:
        exact, statuses, points = _exact(chain, lower, upper, rows_np, row_upper,
                                         outcome.root, q, deadline)
        best = _improve(chain, prep, rows, q, best, points, lower, upper)
    times["exact_s"] = time.monotonic() - t
    source = "milp" if exact is not None else None
    if exact is None and row_upper.max() <= best.value * (1 + config.rel_gap):
        exact, source = best.value, "bab"  # pinned: an attained value within rel_gap
    return LipschitzResult(
        upper=float(row_upper.max()), lower=best.value, exact=exact, exact_source=source,
        naive=naive_bound(chain, rows_np, q), norm=norm.value,
        time_s=time.monotonic() - start, row_upper=tuple(float(v) for v in row_upper),
        witness=tuple(float(v) for v in best.x), witness_row=int(best.row),
        boxes=outcome.boxes, complete=outcome.complete, times=times,
        exact_status=tuple(statuses))
