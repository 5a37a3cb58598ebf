"""The plots of the crosscheck page, as PNG data URIs (matplotlib: the ``plots`` extra).

matplotlib is imported only here, when plots are asked for; :func:`make_plots` returns
None where it is not installed.  Its object interface (``Figure`` + the Agg canvas) is
used, so no global backend or pyplot state is touched.
"""

from __future__ import annotations

import base64
import io

__all__ = ["PLOTS_HINT", "make_plots", "cactus_points", "scatter_points"]

PLOTS_HINT = "plots need pip install 'hybridver[plots]'"


def cactus_points(report: dict) -> dict[str, list[float]]:
    """Per tool, the sorted run times of its solved rows (a cactus plot's curve: the k-th
    fastest instance it solved, for k = 1, 2, ...)."""
    return {t["name"]: sorted(r["time_s"] for r in report["rows"]
                              if r["tool"] == t["name"] and r["solved"])
            for t in report["tools"]}


def scatter_points(report: dict, a: str, b: str) -> list[tuple[float, float, str]]:
    """``(time of a, time of b, kind)`` per instance both ran; an unsolved run counts as
    its time limit; ``kind``: ``both`` / ``a`` / ``b`` / ``neither`` solved."""
    by_key = {}
    for r in report["rows"]:
        by_key.setdefault((r["onnx"], r["vnnlib"]), {})[r["tool"]] = r
    points = []
    for runs in by_key.values():
        if a not in runs or b not in runs:
            continue
        ra, rb = runs[a], runs[b]
        ta = ra["time_s"] if ra["solved"] else ra["timeout_s"]
        tb = rb["time_s"] if rb["solved"] else rb["timeout_s"]
        kind = {(True, True): "both", (True, False): "a", (False, True): "b",
                (False, False): "neither"}[(ra["solved"], rb["solved"])]
        points.append((ta, tb, kind))
    return points


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def make_plots(report: dict, scatter: tuple[str, str] | None = None
               ) -> list[tuple[str, str]] | None:
    """``[(title, data URI), ...]``: the cactus plot, and the time scatter of two tools
    (``scatter``, default the first two); None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    plots = []
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    curves = cactus_points(report)
    for name, times in curves.items():
        ax.step(range(1, len(times) + 1), times, where="post", label=name, marker=".")
    ax.set_xlabel("instances solved")
    ax.set_ylabel("time per instance (s)")
    if any(t > 0 for times in curves.values() for t in times):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    plots.append(("Cactus plot: solved instances, sorted by time", _png(fig)))
    names = [t["name"] for t in report["tools"]]
    pair = scatter or (tuple(names[:2]) if len(names) >= 2 else None)
    if pair and pair[0] in names and pair[1] in names:
        a, b = pair
        points = scatter_points(report, a, b)
        fig = Figure(figsize=(4.8, 4.8))
        ax = fig.add_subplot()
        colors = {"both": "tab:blue", "a": "tab:green", "b": "tab:orange",
                  "neither": "tab:gray"}
        for kind, color in colors.items():
            xs = [p[0] for p in points if p[2] == kind]
            ys = [p[1] for p in points if p[2] == kind]
            if xs:
                label = {"both": "both solved", "a": f"{a} only", "b": f"{b} only",
                         "neither": "neither"}[kind]
                ax.scatter(xs, ys, s=14, color=color, label=label)
        finite = [v for p in points for v in p[:2] if v > 0]
        if finite:
            lo, hi = min(finite) / 1.5, max(finite) * 1.5
            ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.7)
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(f"{a} time (s)")
        ax.set_ylabel(f"{b} time (s)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        plots.append((f"Time scatter: {a} against {b} (unsolved at the limit)", _png(fig)))
    return plots
