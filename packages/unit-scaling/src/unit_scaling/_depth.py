"""Depth containers and parameter metadata (role, residual depth) kept off the Parameter objects.

Metadata is derived from the module tree on demand, so it survives ``deepcopy``, pickling,
``torch.compile``, FSDP/DTensor wrapping and ``state_dict`` round trips (nothing is attached to
``nn.Parameter`` instances).
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

__all__ = ["DepthModuleList", "DepthSequential", "parameter_depths", "parameter_roles"]


class _Depth:
    """Marker mixin: a container whose children are residual blocks of one depth-scaled stack."""

    def depth(self) -> int:
        """Number of leaf residual blocks inside (nested depth containers are expanded)."""
        total = 0
        for child in self.children():  # type: ignore[attr-defined]
            total += child.depth() if isinstance(child, _Depth) else 1
        return total


class DepthModuleList(nn.ModuleList, _Depth):
    """A :class:`torch.nn.ModuleList` of residual blocks; may contain other depth containers.

    Every parameter inside reports the depth L of the *outermost* depth container (the total
    number of leaf blocks), used for depth-μP rules such as an Adam LR × L^-1/2.
    """

    def __init__(self, modules: Iterable[nn.Module] | None = None) -> None:
        super().__init__(modules)


class DepthSequential(nn.Sequential, _Depth):
    """A :class:`torch.nn.Sequential` of residual blocks; may be nested (see DepthModuleList)."""


def parameter_depths(model: nn.Module) -> dict[str, int]:
    """Map each parameter name to the depth of its outermost depth container (1 if none)."""
    out: dict[str, int] = {}
    for name, _ in model.named_parameters():
        out[name] = 1
    for prefix, module in model.named_modules():
        if not isinstance(module, _Depth):
            continue
        d = module.depth()
        for pname, _ in module.named_parameters(prefix=prefix):
            # the outermost container is visited first (named_modules is pre-order)
            if out.get(pname, 1) == 1:
                out[pname] = d
    return out


def parameter_roles(model: nn.Module) -> dict[str, str]:
    """Map each parameter name to its role: ``"weight"`` (hidden), ``"output"`` (readout),
    ``"embedding"``, ``"bias"``, ``"norm"``, or ``"unknown"`` for layers this package does not
    define (plain torch layers). Shared (tied) parameters report their first owner's role."""
    roles: dict[str, str] = {}
    for prefix, module in model.named_modules():
        table = getattr(type(module), "param_roles", None)
        for local, p in module.named_parameters(recurse=False):
            full = f"{prefix}.{local}" if prefix else local
            roles[full] = table.get(local, "unknown") if table else "unknown"
            del p
    return {name: roles.get(name, "unknown") for name, _ in model.named_parameters()}
