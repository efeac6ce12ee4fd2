"""A general solver for ~80 patience/solitaire games, with reference-compatible deals and winnability estimates with confidence intervals."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("solvitaire")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
