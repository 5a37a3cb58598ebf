"""Flags on each (instance, tool) row, from every tool's answers and the known facts.

An instance *has a counterexample* when a planted witness is confirmed on onnxruntime,
any tool's counterexample is ``confirmed`` (:mod:`crosscheck_check`), or the expected
answer is ``sat``; it is *settled unsat* when the expected answer is ``unsat`` and no
counterexample was confirmed.  Flags:

* ``FALSE_UNSAT``: ``unsat`` on an instance with a counterexample;
* ``INVALID_SAT``: ``sat`` whose counterexample is ``invalid`` (outside the box, or not
  violating on onnxruntime, even with VNN-COMP's tolerances), or ``sat`` without one to
  check on a settled-unsat instance;
* ``DISAGREEMENT``: ``sat`` beside another tool's ``unsat`` on an instance neither
  settled nor with a counterexample (a tolerance-only or unchecked ``sat``);
* ``OVER_TIME``: a definite answer after the instance's time limit (not counted as
  solved; still judged above).

``FALSE_UNSAT`` and ``INVALID_SAT`` are soundness violations (:data:`VIOLATIONS`).
"""

from __future__ import annotations

from collections import defaultdict

__all__ = ["FLAGS", "VIOLATIONS", "judge", "summarize"]

FLAGS = ("FALSE_UNSAT", "INVALID_SAT", "DISAGREEMENT", "OVER_TIME")
VIOLATIONS = ("FALSE_UNSAT", "INVALID_SAT")
DEFINITE = ("sat", "unsat")


def _cex_status(row: dict) -> str | None:
    return (row.get("cex") or {}).get("status")


def judge(instances: list[dict], rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(instances, rows)`` with the verdicts of judgement added: each instance gets
    ``has_counterexample``, ``settled`` (``sat`` / ``unsat`` / ``""``) and ``evidence``
    (what shows the counterexample); each row gets ``flags`` (a list of :data:`FLAGS`)
    and ``solved``.  Rows are matched to instances by ``(onnx, vnnlib)``."""
    by_instance: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        by_instance[(row["onnx"], row["vnnlib"])].append(row)
    judged_instances, judged_rows = [], []
    for inst in instances:
        key = (inst["onnx"], inst["vnnlib"])
        inst_rows = by_instance.get(key, [])
        evidence = []
        if (inst.get("witness") or {}).get("status") == "confirmed":
            evidence.append("witness")
        evidence += [f"counterexample of {r['tool']}" for r in inst_rows
                     if r["verdict"] == "sat" and _cex_status(r) == "confirmed"]
        if inst.get("expected") == "sat":
            evidence.append("expected sat")
        has_cex = bool(evidence)
        settled = "sat" if has_cex else "unsat" if inst.get("expected") == "unsat" else ""
        # an invalid counterexample's sat disagrees with nothing: it is already wrong
        open_conflict = (not settled
                         and any(r["verdict"] == "unsat" for r in inst_rows)
                         and any(r["verdict"] == "sat" and _cex_status(r) != "invalid"
                                 for r in inst_rows))
        for row in inst_rows:
            flags = []
            verdict, status = row["verdict"], _cex_status(row)
            if verdict == "unsat" and has_cex:
                flags.append("FALSE_UNSAT")
            if verdict == "sat" and (status == "invalid"
                                     or (status in (None, "unchecked") and settled == "unsat")):
                flags.append("INVALID_SAT")
            if open_conflict and verdict in DEFINITE and "INVALID_SAT" not in flags:
                flags.append("DISAGREEMENT")
            if verdict in DEFINITE and row["time_s"] > row["timeout_s"]:
                flags.append("OVER_TIME")
            solved = verdict in DEFINITE and not ({"FALSE_UNSAT", "INVALID_SAT", "OVER_TIME"}
                                                   & set(flags))
            judged_rows.append({**row, "flags": flags, "solved": solved})
        judged_instances.append({**inst, "has_counterexample": has_cex, "settled": settled,
                                 "evidence": evidence})
    return judged_instances, judged_rows


def summarize(tools: list[str], rows: list[dict]) -> dict[str, dict]:
    """Per tool: runs, solved (``sat``/``unsat`` within the limit and not wrong), wrong
    (soundness violations), counts per verdict and flag, ``time_solved_s`` (sum over solved
    rows) and ``time_total_s``."""
    summary = {}
    for tool in tools:
        mine = [r for r in rows if r["tool"] == tool]
        summary[tool] = {
            "runs": len(mine),
            "solved": sum(r["solved"] for r in mine),
            "wrong": sum(bool(set(r["flags"]) & set(VIOLATIONS)) for r in mine),
            "verdicts": {v: sum(r["verdict"] == v for r in mine)
                         for v in ("sat", "unsat", "timeout", "unknown", "error")},
            "flags": {f: sum(f in r["flags"] for r in mine) for f in FLAGS},
            "time_solved_s": sum(r["time_s"] for r in mine if r["solved"]),
            "time_total_s": sum(r["time_s"] for r in mine),
        }
    return summary
