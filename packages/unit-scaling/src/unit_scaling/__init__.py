"""Unit Scaling: ops, modules and tools that keep weights, activations and gradients at unit variance, so models train in FP16/FP8 out of the box."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("unit-scaling")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
