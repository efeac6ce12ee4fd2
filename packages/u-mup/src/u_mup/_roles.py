"""Parameter roles, kept in a registry keyed by parameter name (not on ``nn.Parameter``).

Each module that owns parameters may carry a plain ``dict`` attribute ``_umup_roles`` mapping the
*local* name of a parameter to its :class:`RoleInfo`. :func:`roles` walks ``named_modules()`` and
prefixes the local names, so the full names it returns are exactly those of
``model.named_parameters()`` -- also for wrappers such as ``torch.compile`` (``_orig_mod.``),
DDP (``module.``) or FSDP2, whose parameter objects change but whose names do not. Because the
registry is an ordinary attribute holding only Python scalars, it survives ``copy.deepcopy``,
pickling and meta-device construction; models also put it into their ``state_dict`` (see
:class:`u_mup.models.Decoder`).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

__all__ = ["PARAMETRIZATIONS", "ParamRole", "RoleInfo", "register_role", "role_of", "roles"]

PARAMETRIZATIONS = ("umup", "mup", "sp")
_ATTR = "_umup_roles"


class ParamRole(str, enum.Enum):
    """What a parameter does, which fixes its abc rule (u-μP §2.3, reference Table in §2.3).

    - ``EMBEDDING``: lookup table of token embeddings (fan_in = vocab, fan_out = d_model).
    - ``INPUT``: first linear on continuous inputs.
    - ``HIDDEN``: width × width matrices (attention q/k/v/o, MLP up/gate/down).
    - ``OUTPUT``: the readout (unembedding) matrix.
    - ``BIAS``: additive biases (initialised to 0).
    - ``NORM``: normalisation gains (initialised to 1).
    """

    EMBEDDING = "embedding"
    INPUT = "input"
    HIDDEN = "hidden"
    OUTPUT = "output"
    BIAS = "bias"
    NORM = "norm"

    @classmethod
    def parse(cls, value: str | ParamRole) -> ParamRole:
        """Accept a role or its string name; raise ``ValueError`` listing the valid roles."""
        if isinstance(value, ParamRole):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            valid = [r.value for r in cls]
            raise ValueError(f"unknown parameter role {value!r}; expected one of {valid}") from None


@dataclass(frozen=True)
class RoleInfo:
    """Registry entry for one parameter.

    Attributes:
        role: the :class:`ParamRole`.
        fan_in / fan_out: the *global* (unsharded) fan-in and fan-out used by the abc rules.
        depth: number of layers of the residual block stack that contains the parameter, or
            ``None`` when it lies outside (embedding, final norm, readout).
        width_mult: d_model / base d_model, used only by the ``mup`` parametrization.
        parametrization: ``"umup"``, ``"mup"`` or ``"sp"``.
    """

    role: ParamRole
    fan_in: int
    fan_out: int
    depth: int | None = None
    width_mult: float = 1.0
    parametrization: str = "umup"

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", ParamRole.parse(self.role))
        for k in ("fan_in", "fan_out"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"RoleInfo.{k} must be a positive int, got {v!r}")
        if self.depth is not None and (not isinstance(self.depth, int) or self.depth < 1):
            raise ValueError(f"RoleInfo.depth must be None or a positive int, got {self.depth!r}")
        if not self.width_mult > 0:
            raise ValueError(f"RoleInfo.width_mult must be > 0, got {self.width_mult!r}")
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"parametrization must be one of {PARAMETRIZATIONS}, got {self.parametrization!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["role"] = self.role.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoleInfo:
        return cls(**d)


def register_role(
    module: nn.Module,
    name: str,
    role: str | ParamRole,
    *,
    fan_in: int | None = None,
    fan_out: int | None = None,
    depth: int | None = None,
    width_mult: float = 1.0,
    parametrization: str = "umup",
) -> RoleInfo:
    """Record the role of ``module``'s own parameter ``name`` (a local name, no dots).

    ``fan_in``/``fan_out`` default to ``weight.shape[1]``/``shape[0]`` for matrices (linear layout
    ``[out, in]``; for an embedding table ``[vocab, d]`` pass them explicitly) and to the length for
    vectors.

    Raises:
        ValueError: unknown role, or ``name`` is not a direct parameter of ``module``.
    """
    params = dict(module.named_parameters(recurse=False))
    if name not in params:
        raise ValueError(
            f"{type(module).__name__} has no direct parameter {name!r} (it has {sorted(params)}); "
            "register roles on the module that owns the parameter, with its local name"
        )
    p = params[name]
    shape = tuple(p.shape)
    if fan_in is None:
        fan_in = int(shape[1]) if len(shape) >= 2 else 1
    if fan_out is None:
        fan_out = int(shape[0]) if len(shape) >= 1 else 1
    info = RoleInfo(
        ParamRole.parse(role),
        int(fan_in),
        int(fan_out),
        depth,
        float(width_mult),
        parametrization,
    )
    table = module.__dict__.get(_ATTR)
    if table is None:
        table = {}
        object.__setattr__(module, _ATTR, table)
    table[name] = info
    return info


def roles(model: nn.Module) -> dict[str, RoleInfo]:
    """Return ``{full parameter name: RoleInfo}`` for every registered parameter of ``model``.

    Names match ``model.named_parameters()`` (tied parameters appear once, under their first
    name), including the prefixes added by ``torch.compile``/DDP wrappers.
    """
    out: dict[str, RoleInfo] = {}
    for mod_name, mod in model.named_modules(remove_duplicate=False):
        table = mod.__dict__.get(_ATTR)
        if not table:
            continue
        for local, info in table.items():
            out[f"{mod_name}.{local}" if mod_name else local] = info
    return out


def role_of(model: nn.Module, name: str) -> RoleInfo:
    """Role of parameter ``name``; ``ValueError`` naming it and the fix when it has none."""
    table = roles(model)
    if name not in table:
        raise ValueError(
            f"parameter {name!r} has no u-μP role; call u_mup.register_role(module, "
            f"'<local name>', role) on its owning module (roles: {[r.value for r in ParamRole]})"
        )
    return table[name]
