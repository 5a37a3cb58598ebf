"""The help: built without importing torch or a solver, every default shown, the shown
defaults the config's own."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from hybridver.cli import build_parser, main

HEAVY = {"torch", "numpy", "onnx", "onnxruntime", "highspy", "ortools", "z3", "scipy",
         "networkx"}
COMMANDS = ["info", "verify", "bounds", "encode", "run-instances", "crosscheck", "plant"]

_PROBE = """
import json, sys
from hybridver.cli import main
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code == 0, (argv, exc.code)
heavy = set(json.loads(sys.argv[2]))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_help_of_every_command_imports_no_heavy_module():
    """``hybridver --help`` and each subcommand's help load neither torch nor numpy nor a
    solver (they took 2-6 s when the parser listed the back ends by importing them)."""
    argvs = [["--help"], ["--version"]] + [[c, "--help"] for c in COMMANDS]
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argvs),
                           json.dumps(sorted(HEAVY))], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: hybridver verify" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_module_entry_point_prints_the_help():
    done = subprocess.run([sys.executable, "-m", "hybridver.cli", "verify", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--timeout S" in done.stdout, done.stderr


def test_import_hybridver_is_light():
    code = ("import sys, hybridver; hybridver.__version__; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HEAVY)!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions
                  if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_with_a_default_shows_it(command, capsys):
    text = _help(command, capsys)
    parser = _subparsers()[command]
    shown = 0
    for action in parser._actions:
        if (not action.option_strings or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS):
            continue
        assert f"(default: {action.default})" in text, (command, action.option_strings)
        shown += 1
    assert shown >= 1


def test_the_defaults_shown_are_the_configs(capsys):
    from hybridver.backends import backend_names, declared_backend_names
    from hybridver.config import VerifyConfig

    config = VerifyConfig()
    text = _help("verify", capsys)
    for words in (f"--timeout S time limit in seconds, loading included (default: "
                  f"{config.timeout_s:g})",
                  f"(default: {config.mode.value})", f"(default: {config.exact.backend})",
                  f"cuda:1 (default: {config.device})",
                  f"(default: {config.schedule.handoff_workers} for hand-offs, "
                  f"{config.schedule.region_race_workers} for region races)",
                  "--decision-log", "(default: off)", "(default: auto)"):
        assert words in text
    # the help lists the back ends read from their sources: the registry's names
    assert declared_backend_names() == backend_names()
    assert "{" + ",".join(backend_names()) + "}" in text
