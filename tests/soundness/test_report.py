"""crosscheck's report: ``report.json`` against its schema, and ``report.html`` rendered
in a real headless Chromium (the verdict matrix, the red false claim, no network)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from importlib import resources

import numpy as np
import pytest

from hybridver.soundness.report_html import render_html
from hybridver.soundness.report_json import SCHEMA
from hybridver.soundness.report_plots import PLOTS_HINT, cactus_points, scatter_points
from tests.soundness.crosscheck_fixtures import fake_tool, write_benchmark, write_witnesses
from tests.soundness.test_crosscheck import crosscheck

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Three real reports: a false unsat (with a witness) and a tolerance-only sat, an
    invalid sat, and a clean run."""
    tmp = tmp_path_factory.mktemp("reports")
    csv = write_benchmark(tmp / "bench")
    witnesses = write_witnesses(tmp / "w.json")
    out = {}
    _, out["false_unsat"] = crosscheck(tmp, csv, [
        fake_tool(tmp, "always_unsat"), fake_tool(tmp, "correct"),
        fake_tool(tmp, "tolerance_cex")], "--witnesses", str(witnesses), report="false_unsat")
    _, out["invalid_sat"] = crosscheck(tmp, csv, [fake_tool(tmp, "wrong_cex")],
                                       report="invalid_sat")
    _, out["clean"] = crosscheck(tmp, csv, [fake_tool(tmp, "correct")], report="clean")
    out["folder"] = tmp
    return out


@pytest.mark.parametrize("name", ["false_unsat", "invalid_sat", "clean"])
def test_the_report_follows_its_schema(reports, name):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((resources.files("hybridver") / SCHEMA).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(reports[name], schema)


def test_the_schema_rejects_an_unknown_flag(reports):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((resources.files("hybridver") / SCHEMA).read_text())
    bad = json.loads(json.dumps(reports["clean"]))
    bad["rows"][0]["flags"] = ["MAYBE_WRONG"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


class _Cells(HTMLParser):
    """The ``<td>`` cells of ``table#verdict-matrix`` (attributes and text) and every
    ``src``/``href`` of the document."""

    def __init__(self):
        super().__init__()
        self.cells, self.links, self.tables = [], [], []
        self._table, self._cell = None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables.append(self._table)
        if tag == "td" and self._table == "verdict-matrix" and "data-tool" in attrs:
            self._cell = {**attrs, "text": ""}
        for key in ("src", "href"):
            if key in attrs:
                self.links.append(attrs[key])

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def _chromium(tmp_path, page, *args):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}", *args,
         page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_chromium_renders_the_matrix_with_the_false_claim_in_red(reports, tmp_path):
    page = reports["folder"] / "false_unsat" / "report.html"
    parser = _Cells()
    parser.feed(_chromium(tmp_path, page, "--dump-dom"))
    assert {"verdict-matrix", "tool-summary", "counterexamples"} <= set(parser.tables)
    cells = {(c["data-instance"], c["data-tool"]): c for c in parser.cells}
    assert len(cells) == 6  # 2 instances x 3 tools
    false_unsat = cells[("0", "always_unsat")]
    assert "false-claim" in false_unsat["class"].split()
    assert false_unsat["text"].startswith("unsat") and "FALSE_UNSAT" in false_unsat["text"]
    assert "FALSE_UNSAT" in false_unsat["title"]
    red = [key for key, c in cells.items() if "false-claim" in c["class"].split()]
    assert red == [("0", "always_unsat")]
    assert cells[("0", "correct")]["text"].startswith("sat")
    assert cells[("0", "tolerance_cex")]["class"].split()[:2] == ["cell", "v-sat"]
    assert all(link.startswith("data:") for link in parser.links)  # nothing fetched


def test_an_invalid_sat_is_red_and_a_clean_run_has_no_red(reports, tmp_path):
    for name, expect_red in (("invalid_sat", 2), ("clean", 0)):
        parser = _Cells()
        parser.feed(_chromium(tmp_path, reports["folder"] / name / "report.html",
                              "--dump-dom"))
        red = [c for c in parser.cells if "false-claim" in c["class"].split()]
        assert len(red) == expect_red, name


def test_the_red_is_on_screen(reports, tmp_path):
    """A screenshot of the page: the false claim's red (#d32f2f) fills a cell; the clean
    report shows none."""
    image = pytest.importorskip("PIL.Image")

    def red_pixels(name):
        shot = tmp_path / f"{name}.png"
        _chromium(tmp_path, reports["folder"] / name / "report.html",
                  f"--screenshot={shot}", "--window-size=1400,1000", "--hide-scrollbars")
        pixels = np.asarray(image.open(shot).convert("RGB"), dtype=int)
        return int(np.all(np.abs(pixels - [211, 47, 47]) < 8, axis=-1).sum())

    assert red_pixels("false_unsat") > 300
    assert red_pixels("clean") == 0


def test_the_page_says_how_to_get_plots_without_matplotlib(reports, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    page = render_html(reports["false_unsat"])
    assert PLOTS_HINT in page and "<img" not in page


def test_the_page_has_plots_with_matplotlib(reports):
    pytest.importorskip("matplotlib")
    page = render_html(reports["false_unsat"])
    assert page.count('src="data:image/png;base64,') == 2 and PLOTS_HINT not in page


def test_plot_data(reports):
    report = reports["false_unsat"]
    cactus = cactus_points(report)
    assert len(cactus["correct"]) == 2 and cactus["correct"] == sorted(cactus["correct"])
    assert len(cactus["always_unsat"]) == 1  # its false unsat is not solved
    points = scatter_points(report, "always_unsat", "correct")
    assert sorted(p[2] for p in points) == ["b", "both"]
    unsolved = next(p for p in points if p[2] == "b")
    assert unsolved[0] == report["instances"][0]["timeout_s"]


def test_the_page_is_one_file_without_network_references(reports):
    page = (reports["folder"] / "false_unsat" / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "<style>" in page and 'rel="stylesheet"' not in page
