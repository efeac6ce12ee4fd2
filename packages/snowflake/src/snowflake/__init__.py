"""GNN policies for MuJoCo locomotion (Centipede-n) with parameter freezing, PPO, and transfer across agent sizes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("snowflake")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
