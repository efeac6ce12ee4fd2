"""abc rules per role (u-μP paper §2–4; TP-V Table 3/8) and the residual τ rule (Appendix G).

A weight is parametrised as ``W = A·w`` with ``w₀ ~ N(0, B²)`` and update ``Δw = C·η·Φ(grads)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._config import UMupConfig
from ._roles import ParamRole, RoleInfo

__all__ = ["ABC", "OPTIMIZER_KINDS", "abc_rule", "residual_contributions", "residual_taus"]

OPTIMIZER_KINDS = ("adam", "sgd")


@dataclass(frozen=True)
class ABC:
    """Forward multiplier ``a``, init std ``b`` (0 means zeros; norms are initialised to ``b``=1
    as ones) and LR factor ``c`` (the parameter's LR is ``c·η``)."""

    a: float
    b: float
    c: float


def _depth_factor(info: RoleInfo, config: UMupConfig) -> float:
    if info.depth is None or info.parametrization != "umup":
        return 1.0
    if config.depth_rule == "sqrt":  # Depth-μP: Adam LR × (L/L₀)^-1/2
        return (info.depth / config.base_depth) ** -0.5
    return 1.0  # CompleteP (α = 1): LR × (L/L₀)^(α-1) = 1


def abc_rule(info: RoleInfo, config: UMupConfig | None = None, optimizer: str = "adam") -> ABC:
    """The (A, B, C) triple for one parameter.

    Tables (d = fan_in, m = width_mult; "×depth" = the depth factor of :class:`UMupConfig`):

    ========== ===================== ================== ===================== ==============
    role       umup (Adam and SGD)   mup Adam           mup SGD               sp
    ========== ===================== ================== ===================== ==============
    embedding  A=1 B=1 C=fan_out^-½  A=1 B=1 C=1        A=1 B=1 C=m           A=1 B=1 C=1
    input      A=d^-½ B=1 C=1        A=1 B=d^-½ C=1     A=1 B=d^-½ C=m        A=1 B=d^-½ C=1
    hidden     A=d^-½ B=1 C=d^-½     A=1 B=d^-½ C=1/m   A=1 B=d^-½ C=1        A=1 B=d^-½ C=1
    output     A=1/d B=1 C=1         A=1/m B=d^-½ C=1   A=1/m B=d^-½ C=m      A=1 B=d^-½ C=1
    bias       A=1 B=0 C=1           A=1 B=0 C=1        A=1 B=0 C=m           A=1 B=0 C=1
    norm       A=1 B=1 C=1           A=1 B=1 C=1        A=1 B=1 C=m           A=1 B=1 C=1
    ========== ===================== ================== ===================== ==============

    u-μP multiplies C by the depth factor for parameters inside the block stack. With its
    unconstrained readout, u-μP's gradients are unit-scaled, so its SGD rule equals its Adam rule
    (reference §2.3). The ``const`` embedding LR rule sets the u-μP embedding C to 1.

    Raises:
        ValueError: unknown optimizer kind.
    """
    config = config or UMupConfig()
    if optimizer not in OPTIMIZER_KINDS:
        raise ValueError(f"optimizer must be one of {OPTIMIZER_KINDS}, got {optimizer!r}")
    r, d, m = info.role, info.fan_in, info.width_mult
    p = info.parametrization
    if p == "umup":
        a = {
            ParamRole.INPUT: d**-0.5,
            ParamRole.HIDDEN: d**-0.5,
            ParamRole.OUTPUT: 1.0 / d,
        }.get(r, 1.0)
        b = 0.0 if r is ParamRole.BIAS else 1.0
        if r is ParamRole.EMBEDDING:
            c = info.fan_out**-0.5 if config.embedding_lr_rule == "fan_out^-1/2" else 1.0
        elif r is ParamRole.HIDDEN:
            c = d**-0.5
        else:
            c = 1.0
        return ABC(a, b, c * _depth_factor(info, config))
    # mup and sp share the init.
    if r is ParamRole.BIAS:
        b = 0.0
    elif r in (ParamRole.EMBEDDING, ParamRole.NORM):
        b = 1.0
    else:
        b = d**-0.5
    if p == "sp":
        return ABC(1.0, b, 1.0)
    a = 1.0 / m if r is ParamRole.OUTPUT else 1.0
    if optimizer == "adam":
        c = 1.0 / m if r is ParamRole.HIDDEN else 1.0
    else:
        c = 1.0 if r is ParamRole.HIDDEN else m
    return ABC(a, b, c)


def _branch_alphas(config: UMupConfig) -> tuple[float, float]:
    rho = config.alpha_res_attn_ratio
    a_mlp = config.alpha_res * math.sqrt(2.0 / (1.0 + rho**2))
    return rho * a_mlp, a_mlp


def _embedding_weight(n_layers: int, config: UMupConfig) -> float:
    # "sqrt": embedding weight L/2 (= n_layers) so each branch contributes ∝ L^-1/2;
    # "completep": an extra factor n_layers / L₀ so each branch's std contribution is ∝ L^-1.
    w = float(n_layers)
    if config.depth_rule == "completep":
        w *= n_layers / config.base_depth
    return w


def residual_taus(n_layers: int, config: UMupConfig | None = None) -> list[float]:
    """τ of each of the ``2·n_layers`` residual branches (attention, MLP, attention, ...).

    The stream after branch i is ``(τ_i·f_i(x) + x)/√(1+τ_i²)``. With ρ = α_res_attn_ratio,
    α_mlp = α_res·√(2/(1+ρ²)), α_attn = ρ·α_mlp (u-μP Appendix G):
    ``τ_i = α_b(i) / √(E + n_attn(i)·α_attn² + n_mlp(i)·α_mlp²)``, with n_attn/n_mlp the number of
    branches of each kind before i and E the embedding weight (``n_layers`` for ``"sqrt"``,
    ``n_layers²/L₀`` for ``"completep"``).

    Raises:
        ValueError: ``n_layers`` < 1.
    """
    config = config or UMupConfig()
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
    a_attn, a_mlp = _branch_alphas(config)
    w = _embedding_weight(n_layers, config)
    taus = []
    for i in range(2 * n_layers):
        n_attn, n_mlp = (i + 1) // 2, i // 2
        alpha = a_attn if i % 2 == 0 else a_mlp
        taus.append(alpha / math.sqrt(w + n_attn * a_attn**2 + n_mlp * a_mlp**2))
    return taus


def residual_contributions(taus: list[float]) -> tuple[float, list[float]]:
    """Variance fractions of the final stream: (embedding, [branch_0, branch_1, ...]).

    Assumes unit-variance, mutually uncorrelated embedding and branch outputs; the fractions
    sum to 1 because every residual add renormalises by ``1/√(1+τ²)``.
    """
    emb = 1.0
    branches: list[float] = []
    for t in taus:
        k = 1.0 / (1.0 + t * t)
        emb *= k
        branches = [b * k for b in branches]
        branches.append(t * t * k)
    return emb, branches
