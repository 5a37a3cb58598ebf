"""A tiny benchmark for crosscheck tests: one real ONNX network, a sat and an unsat
property, and fake tools (small Python scripts run through ``cmd:``).

The network: ``y0 = relu(x0 + x1)``, ``y1 = relu(x0 - x1)`` on the box ``[0, 1]^2``.
``sat.vnnlib`` asks for ``y0 >= 1.5`` (``x = (1, 1)`` gives ``y0 = 2``);
``unsat.vnnlib`` asks for ``y0 >= 2.5`` (``y0 <= 2`` on the box).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HEAD = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 0))
(assert (<= X_0 1))
(assert (>= X_1 0))
(assert (<= X_1 1))
"""
SAT_X = [1.0, 1.0]
SAT_Y = [2.0, 0.0]


def write_net(path: Path) -> Path:
    w = np.array([[1.0, 1.0], [1.0, -1.0]], dtype=np.float32)  # (in, out)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def write_benchmark(folder: Path, expected: dict[str, str] | None = None,
                    timeout: float = 30) -> Path:
    """``folder/instances.csv`` with the sat and the unsat instance (``onnx/`` and
    ``vnnlib/`` subfolders, as VNN-COMP lays them out); ``expected``: ``{"sat.vnnlib":
    "sat", ...}`` written as ``expected_results.csv``."""
    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    (folder / "vnnlib").mkdir(exist_ok=True)
    write_net(folder / "onnx" / "tiny.onnx")
    (folder / "vnnlib" / "sat.vnnlib").write_text(HEAD + "(assert (>= Y_0 1.5))\n")
    (folder / "vnnlib" / "unsat.vnnlib").write_text(HEAD + "(assert (>= Y_0 2.5))\n")
    csv = folder / "instances.csv"
    csv.write_text(f"onnx/tiny.onnx,vnnlib/sat.vnnlib,{timeout:g}\n"
                   f"onnx/tiny.onnx,vnnlib/unsat.vnnlib,{timeout:g}\n")
    if expected:
        lines = ["onnx,vnnlib,timeout_s,expected,files_present"]
        lines += [f"onnx/tiny.onnx,vnnlib/{name},{timeout:g},{answer},yes"
                  for name, answer in expected.items()]
        (folder / "expected_results.csv").write_text("\n".join(lines) + "\n")
    return csv


def write_witnesses(path: Path, x=SAT_X, y=SAT_Y) -> Path:
    path.write_text(json.dumps({
        "format": "hybridver-witnesses/1", "benchmark": "tiny",
        "instances": [{"onnx": "onnx/tiny.onnx", "vnnlib": "vnnlib/sat.vnnlib", "x": list(x),
                       "y": list(y), "margin": -0.5}]}))
    return path


# Each fake tool gets: onnx vnnlib results timeout; it answers by the property's name.
FAKES = {
    "always_unsat": 'answer = "unsat\\n"',
    "wrong_cex": 'answer = "sat\\n((X_0 0.0)\\n (X_1 0.0)\\n (Y_0 0.0)\\n (Y_1 0.0))\\n"',
    "correct": ('answer = ("sat\\n((X_0 1.0)\\n (X_1 1.0)\\n (Y_0 2.0)\\n (Y_1 0.0))\\n"\n'
                '          if vnnlib.endswith("/sat.vnnlib") else "unsat\\n")'),
    # x0 outside the box by 5e-5, y0 = 1.50001: VNN-COMP accepts it, the exact check not
    "tolerance_cex": ('answer = ("sat\\n((X_0 1.00005)\\n (X_1 0.49996)\\n (Y_0 1.50001)\\n'
                      ' (Y_1 0.50009))\\n" if vnnlib.endswith("/sat.vnnlib") else '
                      '"unknown\\n")'),
    "slow_unsat": 'time.sleep(1.5)\nanswer = "unsat\\n"',
}

_SCRIPT = """import sys, time, os
onnx, vnnlib, results, timeout = sys.argv[1:5]
log = os.environ.get("FAKE_TOOL_LOG")
if log:
    with open(log, "a") as f:
        f.write(os.path.basename(sys.argv[0]) + " " + os.path.basename(vnnlib) + "\\n")
{body}
open(results, "w").write(answer)
"""


def fake_tool(folder: Path, name: str, body: str | None = None) -> str:
    """A ``--tool`` argument running the fake ``name`` (a key of :data:`FAKES`, or
    ``body``: Python that sets ``answer``)."""
    script = folder / f"{name}.py"
    script.write_text(_SCRIPT.format(body=body if body is not None else FAKES[name]))
    return f"{name}=cmd:{sys.executable} {script} {{onnx}} {{vnnlib}} {{results}} {{timeout}}"


def assert_processes_gone(pids_file: Path, what: str = "a killed tool's process") -> None:
    """Every pid listed in ``pids_file`` has exited (a zombie awaiting its parent counts)."""
    time.sleep(0.2)
    for pid in pids_file.read_text().split():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            continue
        assert open(f"/proc/{pid}/stat").read().split()[2] == "Z", f"{what} {pid} still runs"
