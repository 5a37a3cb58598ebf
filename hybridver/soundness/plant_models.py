"""The architectures ``hybridver plant`` trains, as small torch modules.

Every model maps a batch of inputs ``(batch, *input_shape)`` to logits ``(batch,
n_classes)``.  Fully connected models read flat inputs ``(batch, n)``; convolutional and
attention models read an image ``(batch, 1, H, W)`` with ``H * W == n`` (see
:func:`input_shape`).  The ops are those hybridver imports from ONNX (Gemm/MatMul, Conv,
AveragePool, Relu, Sigmoid, Tanh, the Erf form of GELU, Softmax, Add, Reshape, Transpose).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from hybridver.soundness.plant_archs import DEFAULT_ARCHITECTURES

__all__ = ["ARCHITECTURES", "DEFAULT_ARCHITECTURES", "PlantedNet", "build_model", "input_shape",
           "image_shape"]


def image_shape(n: int) -> tuple[int, int]:
    """``(H, W)`` with ``H * W == n``: ``H`` is the largest divisor of ``n`` not above
    ``sqrt(n)`` (16 -> 4 x 4, 20 -> 4 x 5, a prime p -> 1 x p)."""
    h = max(k for k in range(1, math.isqrt(n) + 1) if n % k == 0)
    return h, n // h


def input_shape(arch: str, n: int) -> tuple[int, ...]:
    """The model's input shape without the batch dimension: ``(n,)`` or ``(1, H, W)``."""
    if ARCHITECTURES[arch][1]:
        return (1, *image_shape(n))
    return (n,)


def _mlp(activation: Callable[[], nn.Module]) -> Callable[[tuple, int, int], nn.Module]:
    def build(shape: tuple, n_classes: int, width: int) -> nn.Module:
        n = shape[0]
        return nn.Sequential(nn.Linear(n, width), activation(), nn.Linear(width, width),
                             activation(), nn.Linear(width, n_classes))
    return build


def _cnn(shape: tuple, n_classes: int, width: int) -> nn.Module:
    """Two 3x3 convolutions (the second with stride 2), then two linear layers."""
    _, h, w = shape
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * h2 * w2, width), nn.ReLU(),
                         nn.Linear(width, n_classes))


def _cnn_avgpool(shape: tuple, n_classes: int, width: int) -> nn.Module:
    """A 3x3 convolution, 2x2 average pooling (ceil mode off: a last odd row is dropped),
    a second convolution, then two linear layers."""
    _, h, w = shape
    k = 2 if min(h, w) >= 2 else 1
    h2, w2 = h // k, w // k
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(k),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * h2 * w2, width), nn.ReLU(),
                         nn.Linear(width, n_classes))


class ResidualNet(nn.Module):
    """A convolutional stem and one residual block ``relu(z + conv(relu(conv(z))))``."""

    def __init__(self, shape: tuple, n_classes: int, width: int):
        super().__init__()
        _, h, w = shape
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * h * w, width), nn.ReLU(),
                                  nn.Linear(width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.stem(x))
        z = torch.relu(z + self.conv2(torch.relu(self.conv1(z))))
        return self.head(z)


class AttentionNet(nn.Module):
    """The image's rows as tokens ``(batch, H, W)``, one single-head self-attention block
    with a residual connection, then a ReLU layer on the flattened tokens."""

    def __init__(self, shape: tuple, n_classes: int, width: int):
        super().__init__()
        _, h, w = shape
        self.tokens, self.dim = h, 8
        self.embed = nn.Linear(w, self.dim)
        self.query = nn.Linear(self.dim, self.dim)
        self.key = nn.Linear(self.dim, self.dim)
        self.value = nn.Linear(self.dim, self.dim)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(h * self.dim, width), nn.ReLU(),
                                  nn.Linear(width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x.reshape(x.shape[0], self.tokens, -1))  # (batch, H, dim)
        scores = self.query(t) @ self.key(t).transpose(1, 2) / math.sqrt(self.dim)
        t = t + torch.softmax(scores, dim=-1) @ self.value(t)
        return self.head(t)


#: name -> (builder(shape, n_classes, width), reads an image); the names and their
#: descriptions are :data:`hybridver.soundness.plant_archs.ARCHITECTURE_NAMES`
ARCHITECTURES: dict[str, tuple[Callable[[tuple, int, int], nn.Module], bool]] = {
    "mlp": (_mlp(nn.ReLU), False),
    "mlp-sigmoid": (_mlp(nn.Sigmoid), False),
    "mlp-tanh": (_mlp(nn.Tanh), False),
    "mlp-gelu": (_mlp(nn.GELU), False),
    "cnn": (_cnn, True),
    "cnn-avgpool": (_cnn_avgpool, True),
    "resnet": (ResidualNet, True),
    "attention": (AttentionNet, True),
}


def build_model(arch: str, shape: tuple, n_classes: int, width: int,
                seed: int) -> nn.Module:
    """A freshly initialised float32 model (weights drawn from ``seed``)."""
    builder = ARCHITECTURES[arch][0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder(tuple(shape), n_classes, width)
    return model.float()


class PlantedNet(nn.Module):
    """``base(x) + out(bump(x))``: a model with a side branch of one ReLU bump per planted
    box, each zero except near that box's planted vertex.

    Bump ``p`` is fixed (not trained).  With ``t = s_p * (x - c_p) / half_p`` (the input in
    the box's own units, +1 at the planted vertex in every coordinate) it computes
    ``relu(gain * (sum_j t_j - (n - depth) - 2 * sum_j relu(t_j - 1)))``, which equals
    ``relu(gain * (depth - |t - 1|_1))``: a pyramid of height ``gain * depth`` on the vertex,
    exactly zero beyond L1 distance ``depth`` (in half-widths) from it, inside the box and
    outside alike (two ReLU layers: ``edge`` ``(P*n, n)``, then ``bump``).  Away from the
    vertex the branch adds nothing and passes no gradient, so an attacker's gradients and
    samples see only ``base``.  ``out`` ``(n_classes, P)`` is trained (the hinge) to make
    the vertex score the target class above the label.
    """

    def __init__(self, base: nn.Module, n_inputs: int, n_classes: int, n_planted: int):
        super().__init__()
        self.base = base
        self.edge = nn.Linear(n_inputs, n_planted * n_inputs)
        self.bump = nn.Linear(n_inputs, n_planted)
        self.excess = nn.Linear(n_planted * n_inputs, n_planted, bias=False)
        for layer in (self.edge, self.bump, self.excess):
            layer.requires_grad_(False)
        self.out = nn.Linear(n_planted, n_classes, bias=False)
        nn.init.zeros_(self.out.weight)

    def set_corners(self, lower, upper, sign, depth: float, gain: float) -> None:
        """Aim bump ``p`` at the vertex of box ``[lower[p], upper[p]]`` (``(P, n)`` arrays)
        on the side ``sign[p]`` (+-1 per coordinate)."""
        lower, upper, sign = (torch.as_tensor(a, dtype=torch.float64)
                              for a in (lower, upper, sign))
        half, center = (upper - lower) / 2, (upper + lower) / 2
        n_planted, n = lower.shape
        scale = sign / half  # t = scale * x - scale * center
        edge_w = torch.zeros(n_planted * n, n, dtype=torch.float64)
        edge_w[torch.arange(n_planted * n), torch.arange(n).repeat(n_planted)] = scale.reshape(-1)
        edge_b = -(scale * center).reshape(-1) - 1.0  # relu(t_j - 1)
        excess = torch.zeros(n_planted, n_planted * n, dtype=torch.float64)
        for q in range(n_planted):
            excess[q, q * n:(q + 1) * n] = -2.0 * gain
        with torch.no_grad():
            self.edge.weight.copy_(edge_w.float())
            self.edge.bias.copy_(edge_b.float())
            self.bump.weight.copy_((gain * scale).float())
            self.bump.bias.copy_((-gain * ((scale * center).sum(1) + (n - depth))).float())
            self.excess.weight.copy_(excess.float())

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The bumps' activations ``(batch, n_planted)``."""
        flat = x.reshape(x.shape[0], -1)
        return torch.relu(self.bump(flat) + self.excess(torch.relu(self.edge(flat))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.out(self.branch(x))
