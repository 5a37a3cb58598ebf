"""End to end: a CNN exported from torch with ``MaxPool2d(ceil_mode=True, padding=1)``.

On a 5x5 input the pool has 3x3 windows in onnxruntime (and torch): the ONNX definition
drops a last window that starts inside the end padding.  hybridver once kept it (4x4; the
7 windows made of padding only gave -inf, 0 after the ReLU), so its Y_0 was the mean over
16 positions instead of 9: at most 9/16 on inputs in [0, 1], while onnxruntime reaches 1
at x = 1.  The old code answered ``unsat`` (verified) to "Y_0 >= 0.75 is reachable" in
hybrid and exact mode; ``verify`` must answer ``sat`` with a counterexample that
onnxruntime confirms.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from hybridver.cli import main


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():  # conv: channel 0 is x, channel 1 is -x; fc: identity
            self.conv.weight.zero_()
            self.conv.weight[0, 0, 1, 1] = 1.0
            self.conv.weight[1, 0, 1, 1] = -1.0
            self.conv.bias.zero_()
            self.fc.weight.copy_(torch.eye(2))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(torch.flatten(self.gap(torch.relu(self.pool(self.conv(x)))), 1))


@pytest.fixture(scope="module")
def model_and_spec(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ceil")
    model = folder / "ceil_cnn.onnx"
    torch.onnx.export(_Net().eval(), torch.zeros(1, 1, 5, 5), str(model),
                      input_names=["x"], output_names=["y"], opset_version=13, dynamo=False)
    spec = folder / "ceil_cnn.vnnlib"
    lines = [f"(declare-const X_{i} Real)" for i in range(25)]
    lines += ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)"]
    lines += [f"(assert (>= X_{i} 0.0))\n(assert (<= X_{i} 1.0))" for i in range(25)]
    lines += ["(assert (>= Y_0 0.75))"]  # the counterexample condition: Y_0 >= 0.75
    spec.write_text("\n".join(lines) + "\n")
    return model, spec


def test_onnxruntime_pools_three_windows_per_axis(model_and_spec):
    model, _ = model_and_spec
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0, 1, (1, 1, 5, 5)).astype(np.float32)
    y = session.run(None, {"x": x})[0]
    expected = torch.max_pool2d(torch.as_tensor(x), 2, 2, 1, ceil_mode=True)
    assert expected.shape[-2:] == (3, 3)
    np.testing.assert_allclose(y[0, 0], expected.relu().mean().item(), rtol=1e-5)
    ones = session.run(None, {"x": np.ones((1, 1, 5, 5), dtype=np.float32)})[0]
    assert ones[0, 0] == 1.0  # a counterexample: 1 >= 0.75


@pytest.mark.parametrize("mode", ["hybrid", "exact"])
def test_verify_finds_the_confirmed_counterexample(model_and_spec, tmp_path, capsys, mode):
    model, spec = model_and_spec
    report = tmp_path / "report.json"
    code = main(["verify", str(model), str(spec), "--mode", mode, "--timeout", "60",
                 "--json", str(report), "--progress", "off"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "sat", out + err
    cex = json.loads(report.read_text())["counterexample"]
    x = np.asarray(cex["x"], dtype=np.float32).reshape(1, 1, 5, 5)
    assert x.min() >= 0 and x.max() <= 1
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": x})[0][0, 0] >= 0.75
