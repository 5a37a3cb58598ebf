"""The Python example of docs/manipulations.md runs as written and prints what it shows."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_api_example_runs(monkeypatch, capsys):
    text = (REPO / "docs" / "manipulations.md").read_text()
    code, shown = re.findall(r"```python\n(.*?)```\n```\n(.*?)```", text, re.S)[0]
    monkeypatch.chdir(REPO)
    exec(compile(code, "docs/manipulations.md", "exec"), {})
    assert capsys.readouterr().out.split() == shown.split()
