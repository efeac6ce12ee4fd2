"""Unit Scaling: ops, modules and tools that keep weights, activations and gradients at unit
variance, so models train in FP16/FP8 out of the box (Blake, Orr & Luschi, ICML 2023).

Submodules: :mod:`unit_scaling.functional` (``U``), :mod:`unit_scaling.nn`,
:mod:`unit_scaling.scale`, :mod:`unit_scaling.constraints`, :mod:`unit_scaling.formats`,
:mod:`unit_scaling.analysis`, :mod:`unit_scaling.transforms`, :mod:`unit_scaling.testing`.
"""

from importlib.metadata import PackageNotFoundError, version

from . import analysis, constraints, formats, functional, nn, scale, testing, transforms
from ._constraints import Constraint
from ._scale import scale_bwd, scale_fwd

try:
    __version__ = version("unit-scaling")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "Constraint",
    "__version__",
    "analysis",
    "constraints",
    "formats",
    "functional",
    "nn",
    "scale",
    "scale_bwd",
    "scale_fwd",
    "testing",
    "transforms",
]
