"""FP8 linear layers with dynamically updated per-tensor scales for training and inference, scale telemetry and plots, fast kernels."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fp8-scaling")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
