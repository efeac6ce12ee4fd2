"""u-μP: μP + Unit Scaling. Hyperparameters that transfer across width and depth, near-optimal
defaults, and sweep tooling (Blake et al., "u-μP: The Unit-Scaled Maximal Update
Parametrization", ICLR 2025)."""

from importlib.metadata import PackageNotFoundError, version

from ._abc import ABC, abc_rule, residual_contributions, residual_taus
from ._config import UMupConfig
from ._coord import CoordCheckResult, coord_check
from ._fp8 import FP8Sim
from ._optim import SGD, Adam, AdamW, param_groups
from ._roles import ParamRole, RoleInfo, register_role, role_of, roles

try:
    __version__ = version("u-mup")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "ABC",
    "SGD",
    "Adam",
    "AdamW",
    "CoordCheckResult",
    "FP8Sim",
    "ParamRole",
    "RoleInfo",
    "UMupConfig",
    "__version__",
    "abc_rule",
    "coord_check",
    "param_groups",
    "register_role",
    "residual_contributions",
    "residual_taus",
    "role_of",
    "roles",
]
