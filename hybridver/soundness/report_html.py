"""``report.html`` of ``hybridver crosscheck``: one self-contained page (inline CSS, plots
as base64 data URIs, no script, nothing fetched from a network).

Sections (each a ``<table>`` with an ``id``): ``verdict-matrix`` (instances x tools; a
cell's classes: ``cell``, ``v-<verdict>``, ``false-claim`` (red) for FALSE_UNSAT or
INVALID_SAT, ``disagreement``, ``over-time``; ``data-instance`` / ``data-tool`` name it),
``tool-summary`` (solved / wrong / time per tool), ``counterexamples`` (each checked
counterexample and witness with its margin on onnxruntime), then the plots or the hint
that they need the ``plots`` extra.
"""

from __future__ import annotations

from html import escape
from pathlib import PurePosixPath

from hybridver.soundness.crosscheck_judge import FLAGS, VIOLATIONS
from hybridver.soundness.report_plots import PLOTS_HINT, make_plots

__all__ = ["render_html"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f0f0f0; position: sticky; top: 0; }
td code { word-break: break-all; max-width: 40em; display: inline-block; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.cell { text-align: center; white-space: nowrap; }
td.cell small { color: #666; }
.v-sat { background: #fff4e0; } .v-unsat { background: #e6f4ea; }
.v-timeout, .v-unknown { background: #f6f6f6; color: #777; }
.v-error { background: #eee; color: #a00; }
td.false-claim { background: #d32f2f; color: #fff; font-weight: bold; }
td.false-claim small { color: #fdd; }
td.disagreement { outline: 3px solid #f57c00; outline-offset: -3px; }
td.over-time { text-decoration: line-through; }
.verdict-bad { color: #d32f2f; font-weight: bold; } .verdict-ok { color: #2e7d32; }
.note { color: #555; font-style: italic; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
"""


def _name(path: str) -> str:
    name = PurePosixPath(path).name
    for suffix in (".onnx", ".vnnlib"):
        name = name.removesuffix(suffix)
    return name


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _headline(report: dict) -> str:
    violations, disagreements = report["violations"], report["disagreements"]
    if violations:
        text = f"{violations} soundness violation(s): false unsat or invalid sat"
        css = "verdict-bad"
    elif disagreements:
        text, css = f"no violation; {disagreements} row(s) in open disagreements", "verdict-bad"
    else:
        text, css = "no soundness violation found", "verdict-ok"
    return (f'<p id="headline" class="{css}">{escape(text)} (exit status '
            f'{report["exit_code"]})</p>')


def _matrix(report: dict) -> list[str]:
    tools = [t["name"] for t in report["tools"]]
    rows = {(r["onnx"], r["vnnlib"], r["tool"]): r for r in report["rows"]}
    out = ['<table id="verdict-matrix"><thead><tr><th>#</th><th>network</th><th>property</th>'
           '<th>expected</th><th>counterexample known from</th>'
           + "".join(f"<th>{escape(t)}</th>" for t in tools) + "</tr></thead><tbody>"]
    for inst in report["instances"]:
        cells = []
        for tool in tools:
            row = rows.get((inst["onnx"], inst["vnnlib"], tool))
            if row is None:
                cells.append(f'<td class="cell missing" data-instance="{inst["index"]}" '
                             f'data-tool="{escape(tool)}">-</td>')
                continue
            classes = ["cell", f"v-{row['verdict']}"]
            if set(row["flags"]) & set(VIOLATIONS):
                classes.append("false-claim")
            if "DISAGREEMENT" in row["flags"]:
                classes.append("disagreement")
            if "OVER_TIME" in row["flags"]:
                classes.append("over-time")
            title = " ".join(row["flags"]) or row["verdict"]
            if row.get("cex"):
                title += f"; counterexample {row['cex']['status']}"
            if row.get("message"):
                title += f"; {row['message']}"
            cells.append(f'<td class="{" ".join(classes)}" data-instance="{inst["index"]}" '
                         f'data-tool="{escape(tool)}" title="{escape(title)}">'
                         f'{escape(row["verdict"])}<br><small>{row["time_s"]:.2f}s'
                         f'{" " + escape(",".join(row["flags"])) if row["flags"] else ""}'
                         f"</small></td>")
        out.append(f'<tr><td class="num">{inst["index"]}</td>'
                   f'<td title="{escape(inst["onnx"])}">{escape(_name(inst["onnx"]))}</td>'
                   f'<td title="{escape(inst["vnnlib"])}">{escape(_name(inst["vnnlib"]))}</td>'
                   f'<td>{escape(inst["expected"] or "-")}</td>'
                   f'<td>{escape(", ".join(inst["evidence"]) or "-")}</td>'
                   + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return out


def _summary(report: dict) -> list[str]:
    heads = (["tool", "command", "runs", "solved", "wrong", "sat", "unsat", "timeout",
              "unknown", "error"] + list(FLAGS) + ["time solved (s)", "time total (s)"])
    out = ['<table id="tool-summary"><thead><tr>'
           + "".join(f"<th>{escape(h)}</th>" for h in heads) + "</tr></thead><tbody>"]
    for tool in report["tools"]:
        s = report["summary"][tool["name"]]
        wrong_css = ' class="num false-claim"' if s["wrong"] else ' class="num"'
        cells = ([f"<td>{escape(tool['name'])}</td>", f"<td><code>{escape(tool['command'])}"
                  "</code></td>", f'<td class="num">{s["runs"]}</td>',
                  f'<td class="num">{s["solved"]}</td>', f"<td{wrong_css}>{s['wrong']}</td>"]
                 + [f'<td class="num">{s["verdicts"][v]}</td>'
                    for v in ("sat", "unsat", "timeout", "unknown", "error")]
                 + [f'<td class="num">{s["flags"][f]}</td>' for f in FLAGS]
                 + [f'<td class="num">{s["time_solved_s"]:.2f}</td>',
                    f'<td class="num">{s["time_total_s"]:.2f}</td>'])
        out.append(f'<tr data-tool="{escape(tool["name"])}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return out


def _counterexamples(report: dict) -> list[str]:
    heads = ["#", "network", "property", "from", "status", "margin on onnxruntime",
             "outside box by", "written Y rel. error", "note"]
    out = ['<table id="counterexamples"><thead><tr>'
           + "".join(f"<th>{escape(h)}</th>" for h in heads) + "</tr></thead><tbody>"]
    index = {(i["onnx"], i["vnnlib"]): i for i in report["instances"]}
    entries = [(i, "planted witness", i["witness"]) for i in report["instances"]
               if i.get("witness")]
    entries += [(index[(r["onnx"], r["vnnlib"])], r["tool"], r["cex"]) for r in report["rows"]
                if r.get("cex")]
    entries.sort(key=lambda e: e[0]["index"])
    for inst, source, cex in entries:
        bad = ' class="false-claim"' if cex["status"] == "invalid" else ""
        out.append(f'<tr><td class="num">{inst["index"]}</td>'
                   f'<td>{escape(_name(inst["onnx"]))}</td>'
                   f'<td>{escape(_name(inst["vnnlib"]))}</td><td>{escape(source)}</td>'
                   f'<td{bad}>{escape(cex["status"])}</td>'
                   f'<td class="num">{_num(cex.get("margin"), 6)}</td>'
                   f'<td class="num">{_num(cex.get("input_excess"))}</td>'
                   f'<td class="num">{_num(cex.get("y_rel_error"))}</td>'
                   f'<td>{escape(cex.get("reason") or "")}</td></tr>')
    if not entries:
        out.append(f'<tr><td colspan="{len(heads)}" class="note">no counterexample was '
                   "given</td></tr>")
    out.append("</tbody></table>")
    return out


def render_html(report: dict, plots: bool = True, scatter: tuple[str, str] | None = None
                ) -> str:
    """The page for a crosscheck report (:mod:`report_json`)."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>hybridver crosscheck</title>", f"<style>{_CSS}</style></head><body>",
             f"<h1>hybridver crosscheck: {escape(report['category'])}</h1>",
             f"<p>{len(report['instances'])} instances from <code>"
             f"{escape(report['instances_csv'])}</code>, {len(report['tools'])} tools"
             + (f", planted witnesses from <code>{escape(report['witnesses'])}</code>"
                if report.get("witnesses") else "") + ".</p>",
             _headline(report),
             "<h2>Verdict matrix</h2>",
             '<p class="note">Red: a false claim (FALSE_UNSAT: unsat where a counterexample '
             "exists; INVALID_SAT: sat without a valid counterexample). Orange frame: sat "
             "against unsat with neither settled. Struck through: answered after the "
             "limit.</p>"]
    parts += _matrix(report)
    parts += ["<h2>Per tool</h2>"] + _summary(report)
    parts += ["<h2>Counterexamples re-checked on onnxruntime</h2>",
              '<p class="note">confirmed: inside the exact box and violating with zero '
              "tolerance; tolerance: accepted only within VNN-COMP's tolerances; invalid: "
              "neither. Margin: max(C y + d) of the violated disjunct (&le; 0 violates)."
              "</p>"]
    parts += _counterexamples(report)
    parts.append('<h2>Plots</h2><div id="plots">')
    images = make_plots(report, scatter) if plots else None
    if images is None:
        text = PLOTS_HINT if plots else "plots were not asked for"
        parts.append(f'<p class="note" id="plots-missing">{escape(text, quote=False)}</p>')
    else:
        for title, uri in images:
            parts.append(f"<figure><img alt=\"{escape(title)}\" src=\"{uri}\">"
                         f"<figcaption>{escape(title)}</figcaption></figure>")
    parts.append("</div></body></html>")
    return "\n".join(parts) + "\n"
