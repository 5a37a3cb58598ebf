"""torch.fx importer: every model is compared with the module itself in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hybridver.errors import ModelLoadError, UnsupportedOpError
from hybridver.ir import NetworkGraph, OpKind, evaluate_all
from hybridver.frontends.torch import check_against_module, from_torch


def _randomize_bn(module: nn.Module) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen))
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            if m.affine:
                with torch.no_grad():
                    m.weight.copy_(torch.randn(c, generator=gen))
                    m.bias.copy_(torch.randn(c, generator=gen))
    return module


def _import_and_compare(module: nn.Module, example: torch.Tensor, n: int = 32) -> NetworkGraph:
    module.eval()
    graph = from_torch(module, example)
    diff = check_against_module(graph, module, example, n=n, tol=None)
    assert diff < 1e-9, diff
    return graph


ACTIVATIONS = [nn.ReLU(), nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Tanh(), nn.GELU(),
               nn.Softmax(dim=-1), nn.SiLU(), nn.ReLU6(), nn.Hardtanh(-0.5, 0.7), nn.Identity(),
               nn.Dropout(0.3)]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: type(a).__name__)
def test_sequential_mlp_each_activation(act: nn.Module) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), act, nn.Linear(8, 8), act, nn.Linear(8, 3))
    graph = _import_and_compare(model, torch.randn(1, 6))
    assert graph.input_node.shape == (1, 6)
    assert graph.output_node.shape == (1, 3)
    assert graph.op_counts()["linear"] == 3


def test_graph_shapes_follow_example_input_and_params_are_float64() -> None:
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    graph = from_torch(model, torch.randn(1, 64), name="mlp")
    assert graph.name == "mlp"
    assert graph.input_node.shape == (1, 64)
    linear = [nd for nd in graph.nodes() if nd.op is OpKind.LINEAR]
    assert linear[0].consts["weight"].dtype == np.float64
    assert linear[0].consts["weight"].shape == (32, 64)
    # the caller's module is untouched (still float32, still in training mode)
    assert model[0].weight.dtype == torch.float32 and model.training


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 8)
        self.fc2 = nn.Linear(8, 8)
        self.w = nn.Parameter(torch.randn(12, 5))
        self.register_buffer("shift", torch.randn(5))
        self.register_buffer("scale", torch.rand(1, 5) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        h = F.relu(self.fc2(h)) + x                      # residual add
        h = torch.cat([h, x[:, :4]], dim=1)              # concat + slicing
        h = torch.tanh(h) * 2.0 - 1.0 + 0.5 / (1.0 + torch.sigmoid(h))  # scalar arithmetic
        y = h @ self.w                                   # matmul with a parameter
        y = (y - self.shift) / self.scale                # buffers
        z = torch.sin(y) + torch.cos(y) - torch.exp(-y.abs()) + torch.sqrt(y * y + 1)
        z = z.view(z.size(0), -1).reshape(1, 5, 1).flatten(1)
        return F.softmax(z, dim=-1) + z.sum(dim=1, keepdim=True) - z.mean(-1, keepdim=True)


def test_functional_module() -> None:
    torch.manual_seed(0)
    graph = _import_and_compare(Functional(), torch.randn(1, 8))
    counts = graph.op_counts()
    for op in ("concat", "slice", "matmul", "softmax", "reduce_sum", "reduce_mean", "sin",
               "cos", "exp", "sqrt", "div", "sub"):
        assert counts[op] >= 1, op


class Movement(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.randn(3, 4))

    def forward(self, x: torch.Tensor):
        a = x.permute(0, 2, 3, 1)                       # (1, 4, 5, 3)
        b = a.transpose(1, 2).contiguous()              # (1, 5, 4, 3)
        c = b[..., 1:3, ::2]                            # (1, 5, 2, 2)
        d = x[:, [2, 0]]                                # gather on the channel axis
        e = torch.stack([x[0, 0], x[0, 1]], dim=0)      # (2, 4, 5)
        f0, f1 = torch.split(x, [1, 2], dim=1)
        g = torch.chunk(x, 2, dim=3)[1]
        u = x.unbind(1)[2]
        p = F.pad(x, (1, 2, 0, 1), value=0.5)
        t = x[0, 1].T @ self.table.T                    # (5, 3)
        cl = torch.clamp(x, min=-0.3, max=0.4) + x.clamp(min=0.1)
        lk = F.leaky_relu(x, 0.1) + F.silu(x) + F.gelu(x) + F.hardtanh(x)
        ex = x[:, :1].expand(1, 3, 4, 5) + x.sum(1, keepdim=True).expand_as(x)
        return a, b, c, d, e, f0 * f1[:, :1], g, u, p, t, cl, lk, ex, x.unsqueeze(0).squeeze(0)


def test_data_movement_ops() -> None:
    torch.manual_seed(0)
    graph = _import_and_compare(Movement(), torch.randn(1, 3, 4, 5))
    assert len(graph.outputs) == 14
    counts = graph.op_counts()
    assert counts["transpose"] >= 2 and counts["gather"] == 1 and counts["pad"] == 1


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, stride=1, padding="same", bias=False), nn.BatchNorm2d(6),
            nn.ReLU(), nn.AvgPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(6 * 2 * 2, 10), nn.BatchNorm1d(10),
                                  nn.ReLU(), nn.Linear(10, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_small_cnn() -> None:
    torch.manual_seed(0)
    model = _randomize_bn(SmallCNN())
    graph = _import_and_compare(model, torch.randn(1, 2, 8, 8))
    counts = graph.op_counts()
    assert counts["conv"] == 2 and counts["batch_norm"] == 3 and counts["max_pool"] == 1
    assert counts["average_pool"] == 1 and counts["linear"] == 2
    conv = next(nd for nd in graph.nodes() if nd.op is OpKind.CONV)
    assert conv.attrs["pads"] == (1, 1, 1, 1) and conv.shape == (1, 4, 8, 8)


class Convs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(3, 4, 3, stride=2, padding=2, dilation=2)
        self.c2 = nn.Conv2d(1, 4, (2, 3), padding="same", groups=1)
        self.ct = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=0, output_padding=1)
        self.ct2 = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bn1 = nn.BatchNorm1d(4)
        self.w = nn.Parameter(torch.randn(4, 4, 3, 3) * 0.3)

    def forward(self, x: torch.Tensor, ) -> tuple[torch.Tensor, ...]:
        s = x[:, :3, 0]                                          # (1, 3, 6)
        a = self.bn1(self.c1(s))
        b = self.c2(x[:, :1])
        c = self.ct(b)
        d = self.ct2(F.conv2d(b, self.w, padding=1))
        e = self.pool(d) + F.adaptive_avg_pool2d(d, (6, 6)).mean((2, 3), keepdim=True)
        f = F.max_pool2d(x, 3, stride=2, padding=1) + F.avg_pool2d(x, 2, 2)[..., :3, :3]
        return a, c, d, e, f


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_convolutions_and_pooling() -> None:
    torch.manual_seed(0)
    model = _randomize_bn(Convs())
    graph = _import_and_compare(model, torch.randn(1, 4, 6, 6))
    counts = graph.op_counts()
    assert counts["conv_transpose"] == 2 and counts["conv"] == 3
    assert counts["global_average_pool"] == 1


def test_mlp_on_sequence_axis_and_multi_input() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * y + torch.matmul(x, x.transpose(1, 2)).sum(-1, keepdim=True)

    torch.manual_seed(0)
    model = Two().eval()
    ex = (torch.randn(1, 5, 4), torch.randn(1, 5, 3))
    graph = from_torch(model, ex)
    assert graph.inputs == ("x", "y")
    assert check_against_module(graph, model, ex, n=32, tol=None) < 1e-9


def test_unsupported_ops_are_all_listed() -> None:
    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(4, 4, batch_first=True)
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            values, _ = torch.topk(self.fc(x), 2)
            out, _ = self.lstm(x)
            return values.sum() + out.sum() + F.gelu(x, approximate="tanh").sum()

    with pytest.raises(UnsupportedOpError) as info:
        from_torch(Bad(), torch.randn(1, 3, 4))
    ops = " ".join(op for op, _ in info.value.unsupported)
    nodes = [node for _, node in info.value.unsupported]
    assert "torch.topk" in ops and "LSTM" in ops and "approximate='tanh'" in ops
    assert "topk" in nodes and "lstm" in nodes
    assert "torch.topk" in str(info.value) and isinstance(info.value, ModelLoadError)


def test_tanh_gelu_module_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedOpError, match="approximate='none'"):
        from_torch(nn.Sequential(nn.Linear(3, 3), nn.GELU(approximate="tanh")),
                   torch.randn(1, 3))


def test_training_batchnorm_and_data_dependent_python_are_rejected() -> None:
    class Item(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x.sum().item()

    with pytest.raises(UnsupportedOpError, match="item"):
        from_torch(Item(), torch.randn(1, 3))
    bn = nn.BatchNorm1d(3, track_running_stats=False)
    with pytest.raises(UnsupportedOpError, match="batch statistics"):
        from_torch(nn.Sequential(nn.Linear(3, 3), bn), torch.randn(4, 3))


def test_inplace_relu_and_static_constants_from_forward() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.act = nn.ReLU(inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            ones = torch.ones(x.shape[1]) * 0.5
            return self.act(self.fc(x)) + ones + torch.arange(x.size(1))

    torch.manual_seed(0)
    graph = _import_and_compare(M(), torch.randn(1, 3))
    assert graph.op_counts()["relu"] == 1


def test_check_against_module_detects_a_mismatch() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2)).eval()
    graph = from_torch(model, torch.randn(1, 3))
    other = nn.Sequential(nn.Linear(3, 2)).eval()
    with pytest.raises(ModelLoadError, match="differs"):
        check_against_module(graph, other, torch.randn(1, 3), n=4)
    assert check_against_module(graph, other, torch.randn(1, 3), n=4, tol=None) > 1e-3


def test_evaluates_batched_like_the_module() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2)).eval()
    graph = from_torch(model, torch.randn(1, 5))
    xs = torch.randn(32, 1, 5, dtype=torch.float64)
    got = evaluate_all(graph, xs)[graph.outputs[0]]
    want = model.double()(xs)
    assert torch.allclose(got, want, atol=1e-12)


def test_indexing_upsampling_and_dict_outputs() -> None:
    class M(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"last": x[:, -1], "new_axis": x[..., None], "pick": x[:, torch.tensor([1, 0])],
                    "crop": x[0, :, 2:], "up": F.interpolate(x, scale_factor=2, mode="nearest"),
                    "alpha": torch.add(x, 1, alpha=2) - x.mean(), "flat": x.flatten()}

    torch.manual_seed(0)
    graph = _import_and_compare(M(), torch.randn(1, 3, 4, 4))
    assert len(graph.outputs) == 7 and graph.op_counts()["upsample"] == 1
    with pytest.raises(UnsupportedOpError, match="bilinear"):
        from_torch(nn.Upsample(scale_factor=2, mode="bilinear"), torch.randn(1, 3, 4, 4))
