"""u-μP: μP + Unit Scaling. Hyperparameters that transfer across width and depth, near-optimal defaults, and sweep tooling."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("u-mup")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
