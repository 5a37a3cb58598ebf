"""The architecture names of ``hybridver plant`` (no imports: the command line's help
lists them without loading torch; :mod:`plant_models` builds them)."""

from __future__ import annotations

__all__ = ["ARCHITECTURE_NAMES", "DEFAULT_ARCHITECTURES"]

#: name -> description
ARCHITECTURE_NAMES: dict[str, str] = {
    "mlp": "two hidden ReLU layers",
    "mlp-sigmoid": "two hidden sigmoid layers",
    "mlp-tanh": "two hidden tanh layers",
    "mlp-gelu": "two hidden GELU layers (exported with Erf)",
    "cnn": "two ReLU convolutions, two linear layers",
    "cnn-avgpool": "convolutions with 2x2 average pooling",
    "resnet": "a convolutional residual block",
    "attention": "one self-attention block over the image rows",
}

#: the architectures of the default benchmark
DEFAULT_ARCHITECTURES = tuple(ARCHITECTURE_NAMES)
