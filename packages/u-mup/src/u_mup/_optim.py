"""Per-parameter LR and weight decay from the role registry, for any torch optimizer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ._abc import OPTIMIZER_KINDS, abc_rule
from ._config import UMupConfig
from ._roles import ParamRole, roles

__all__ = ["SGD", "Adam", "AdamW", "find_config", "param_groups"]

_NO_DECAY = (ParamRole.BIAS, ParamRole.NORM)


def find_config(model: nn.Module) -> UMupConfig:
    """The :class:`UMupConfig` attached to ``model`` (attribute ``umup_config`` on any submodule),
    or the default one."""
    for mod in model.modules():
        cfg = getattr(mod, "umup_config", None)
        if isinstance(cfg, UMupConfig):
            return cfg
    return UMupConfig()


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    *,
    config: UMupConfig | None = None,
    independent_weight_decay: bool = True,
    groups: Sequence[dict[str, Any]] | None = None,
    no_decay_roles: Iterable[ParamRole | str] = _NO_DECAY,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with each parameter's u-μP (or μP/SP) LR and weight decay.

    Each parameter's LR is ``C·lr`` where ``C`` comes from :func:`u_mup.abc_rule` for its
    registered role, fan-in, depth and the model's parametrization (u-μP §4, Table 3). With
    ``independent_weight_decay`` (default), the group's ``weight_decay`` is ``λ / lr_param``, so
    torch's decoupled update ``lr_param·wd·p`` removes exactly ``λ·p`` per step at peak LR
    whatever ``lr`` is (reference §2.3); otherwise it is ``λ`` as given.

    Args:
        model: a module whose parameters have roles (see :func:`u_mup.register_role`).
        lr: the global learning rate η (> 0).
        weight_decay: λ (≥ 0). Roles in ``no_decay_roles`` (bias, norm by default) get 0.
        optimizer: ``"adam"`` (Adam, AdamW, Lion-like sign/adaptive methods) or ``"sgd"``.
        config: the :class:`UMupConfig` (default: the one attached to the model).
        groups: existing parameter groups (dicts with ``"params"`` and optional ``"lr"``,
            ``"weight_decay"`` and any other keys). Their keys are preserved and their ``lr`` /
            ``weight_decay`` replace the global ones for their parameters; parameters not listed
            in any group are left out.

    Returns:
        A list of dicts usable as the first argument of any ``torch.optim.Optimizer``. Each also
        carries ``"names"``, ``"role"`` and ``"lr_scale"`` (C) for inspection and schedulers.

    Raises:
        ValueError: a trainable parameter has no role (naming it and the fix), bad lr/wd/optimizer.
    """
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if optimizer not in OPTIMIZER_KINDS:
        raise ValueError(f"optimizer must be one of {OPTIMIZER_KINDS}, got {optimizer!r}")
    config = config or find_config(model)
    no_decay = {ParamRole.parse(r) for r in no_decay_roles}
    table = roles(model)
    named = list(model.named_parameters())
    name_of = {id(p): n for n, p in named}

    if groups is None:
        user_groups: list[dict[str, Any]] = [{"params": [p for _, p in named]}]
    else:
        user_groups = [dict(g) for g in groups]
        for i, g in enumerate(user_groups):
            ps = g.get("params")
            if isinstance(ps, torch.Tensor):
                ps = [ps]
            g["params"] = list(ps or [])
            for p in g["params"]:
                if id(p) not in name_of:
                    raise ValueError(f"group {i} holds a tensor that is not a parameter of model")

    merged: dict[tuple, dict[str, Any]] = {}
    for gi, g in enumerate(user_groups):
        base_lr = float(g.get("lr", lr))
        base_wd = float(g.get("weight_decay", weight_decay))
        extra = {k: v for k, v in g.items() if k not in ("params", "lr", "weight_decay")}
        for p in g["params"]:
            if not p.requires_grad:
                continue
            name = name_of[id(p)]
            info = table.get(name)
            if info is None:
                raise ValueError(
                    f"parameter {name!r} (shape {tuple(p.shape)}) has no u-μP role. Register one "
                    "with u_mup.register_role(owning_module, local_name, role) using a role from "
                    f"{[r.value for r in ParamRole]}, or freeze it (requires_grad=False)."
                )
            c = abc_rule(info, config, optimizer).c
            p_lr = c * base_lr
            if info.role in no_decay or base_wd == 0:
                wd = 0.0
            elif independent_weight_decay:
                wd = base_wd / p_lr
            else:
                wd = base_wd
            key = (gi, info.role.value, c, wd)
            if key not in merged:
                merged[key] = {
                    **extra,
                    "params": [],
                    "names": [],
                    "lr": p_lr,
                    "weight_decay": wd,
                    "role": info.role.value,
                    "lr_scale": c,
                }
            merged[key]["params"].append(p)
            merged[key]["names"].append(name)
    return list(merged.values())


def _make(cls: type[torch.optim.Optimizer], kind: str):
    def build(
        model: nn.Module,
        lr: float,
        weight_decay: float = 0.0,
        *,
        config: UMupConfig | None = None,
        independent_weight_decay: bool = True,
        **kwargs: Any,
    ) -> torch.optim.Optimizer:
        groups = param_groups(
            model,
            lr,
            weight_decay,
            kind,
            config=config,
            independent_weight_decay=independent_weight_decay,
        )
        return cls(groups, lr=lr, **kwargs)

    build.__name__ = cls.__name__
    build.__doc__ = (
        f"``torch.optim.{cls.__name__}`` over :func:`param_groups` (rule ``{kind!r}``); "
        "extra keyword arguments go to the optimizer."
    )
    return build


Adam = _make(torch.optim.Adam, "adam")
AdamW = _make(torch.optim.AdamW, "adam")
SGD = _make(torch.optim.SGD, "sgd")
