"""SparQ Attention: bandwidth-efficient decode attention for off-the-shelf LLMs, fast kernels, Hugging Face integration."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sparq")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
