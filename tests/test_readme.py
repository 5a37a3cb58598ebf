"""The README's Python examples run as written (from the repository root)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_the_readme_has_the_api_examples():
    text = "\n".join(BLOCKS)
    for name in ("hybridver.verify(", "hybridver.from_module(", "hybridver.robustness(",
                 "hybridver.compute_bounds("):
        assert name in text


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})
    assert capsys.readouterr().out.strip()
