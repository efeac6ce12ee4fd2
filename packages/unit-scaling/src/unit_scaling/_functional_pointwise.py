"""Unit-scaled elementwise ops: activations, softmax, dropout, add, residuals and norms.

Each op computes the plain torch result and applies its forward scale α and backward scale β
with :func:`unit_scaling.scale.scale`; under ``torch.compile`` these multiplies fuse into the op's
own kernel. Scale models are in ``_scale_models`` (Unit Scaling §5; u-μP §4 for ``mult``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_mult, check_tensor, reject
from ._constraints import ConstraintLike, apply_constraint
from ._scale import scale, scale_bwd, scale_fwd
from ._scale_models import activation_scales, glu_scales, softmax_scales

__all__ = [
    "add",
    "dropout",
    "gelu",
    "layer_norm",
    "residual_add",
    "residual_apply",
    "residual_split",
    "rms_norm",
    "silu",
    "silu_glu",
    "softmax",
]


def gelu(
    input: Tensor,
    approximate: str = "none",
    *,
    mult: float = 1.0,
    constraint: ConstraintLike = "to_output_scale",
) -> Tensor:
    """Unit-scaled GELU: ``α · gelu(mult · x) / mult`` (u-μP α_ffn-act is ``mult``).

    α = 1/std and β = 1/rms(gelu'(mult·x)) for x ~ N(0, 1), by Gauss-Hermite quadrature.
    Default constraint ``to_output_scale``. Shape and dtype of ``input`` are preserved.
    """
    check_tensor("gelu", "input", input)
    m = check_mult("gelu", mult)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}.")
    a, b = apply_constraint(constraint, *activation_scales("gelu", m))
    x = input * m if m != 1.0 else input
    return scale(F.gelu(x, approximate=approximate), a / m, b / m)


def silu(
    input: Tensor,
    inplace: bool = False,
    *,
    mult: float = 1.0,
    constraint: ConstraintLike = "to_output_scale",
) -> Tensor:
    """Unit-scaled SiLU: ``α · silu(mult · x) / mult = α · x · sigmoid(mult · x)``.

    Scales as :func:`gelu`. Default constraint ``to_output_scale``.
    """
    check_tensor("silu", "input", input)
    reject("silu", "inplace", inplace, False, "drop inplace=True (the scaled op is out of place).")
    m = check_mult("silu", mult)
    a, b = apply_constraint(constraint, *activation_scales("silu", m))
    x = input * m if m != 1.0 else input
    return scale(F.silu(x), a / m, b / m)


def silu_glu(
    input: Tensor,
    gate: Tensor,
    *,
    mult: float = 1.0,
    constraint: ConstraintLike = "to_output_scale",
) -> Tensor:
    """Unit-scaled SwiGLU gating: ``α · input · silu(mult · gate) / mult``.

    Args:
        input, gate: same shape. The ideal scales are α = β_input = 1/rms(h(g)) and
            β_gate = 1/rms(h'(g)), with h(g) = silu(mult·g)/mult; ``constraint`` (default
            ``to_output_scale``) ties all three.
    """
    check_tensor("silu_glu", "input", input)
    check_tensor("silu_glu", "gate", gate)
    if input.shape != gate.shape:
        raise ValueError(
            f"silu_glu: input {tuple(input.shape)} and gate {tuple(gate.shape)} must have the "
            f"same shape; split the up-projection into two equal halves."
        )
    m = check_mult("silu_glu", mult)
    a_out, a_gate = glu_scales(m)
    a, b_x, b_g = apply_constraint(constraint, a_out, a_out, a_gate)
    x = scale_bwd(input, b_x / a)
    g = scale(gate, m, m * b_g / a) if (m != 1.0 or b_g != a) else gate
    return (x * F.silu(g)) * (a / m)


def softmax(
    input: Tensor,
    dim: int,
    dtype: torch.dtype | None = None,
    *,
    mult: float = 1.0,
    constraint: ConstraintLike = "to_output_scale",
) -> Tensor:
    """Unit-scaled softmax: ``α · softmax(mult · x)`` along ``dim`` of size N.

    α = 1/rms(p) and β = 1/rms(∂softmax(mult·x)/∂x · g) for N(0, 1) logits and gradient g (a
    cached fixed-seed estimate; rms(p)² → e^{mult²}/N² for large N), so β makes the input
    gradient unit-scaled. Outputs lie in [0, α], so RMS (not std) is unit.
    Default constraint ``to_output_scale`` (then the input gradient has std ≈ mult).
    """
    check_tensor("softmax", "input", input, 1)
    m = check_mult("softmax", mult)
    n = input.shape[dim]
    r_out, r_grad = softmax_scales(n, m)
    # y = b_fwd·softmax(m·x): the raw input gradient (for unit g) has RMS r_grad, times b_bwd.
    a, b = apply_constraint(constraint, 1.0 / r_out, 1.0 / r_grad)
    x = input * m if m != 1.0 else input
    return scale(F.softmax(x, dim, dtype=dtype), a, b)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Unit-scaled dropout: ``sqrt(1-p) · F.dropout(x, p)`` in forward and backward.

    torch's dropout rescales kept values by 1/(1-p), inflating the variance by 1/(1-p); the extra
    sqrt(1-p) restores unit variance. Identity when ``training`` is False.
    """
    check_tensor("dropout", "input", input)
    reject("dropout", "inplace", inplace, False, "drop inplace=True.")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p!r}.")
    if not training or p == 0.0:
        return input
    return F.dropout(input, p, True) * math.sqrt(1.0 - p)


def add(
    input: Tensor,
    other: Tensor | float,
    *,
    alpha: float = 1.0,
    constraint: ConstraintLike = "to_output_scale",
) -> Tensor:
    """Unit-scaled ``torch.add``: ``(input + alpha·other) / sqrt(1 + alpha²)`` (broadcast-aware).

    Ideal input-gradient scales are 1/sqrt(e) with e the broadcast expansion of that input (its
    gradient sums e unit values). Adding a Python number is unscaled. Default ``to_output_scale``.
    """
    check_tensor("add", "input", input)
    if not isinstance(other, Tensor):
        return input + alpha * other
    out_shape = torch.broadcast_shapes(input.shape, other.shape)
    n_out = math.prod(out_shape)
    e_in = n_out / max(input.numel(), 1)
    e_other = n_out / max(other.numel(), 1)
    a_out = (1.0 + alpha * alpha) ** -0.5
    a, b_in, b_other = apply_constraint(
        constraint, a_out, e_in**-0.5, (abs(alpha) * e_other**0.5) ** -1 if alpha else 1.0
    )
    return scale(input, a, b_in) + scale(other, a * alpha, b_other * alpha)


def _tau_weights(tau: float) -> tuple[float, float]:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau >= 0:
        raise ValueError(f"residual tau must be a Python float >= 0, got {tau!r}.")
    norm = (1.0 + tau * tau) ** -0.5
    return tau * norm, norm


def residual_split(input: Tensor, tau: float = 1.0) -> tuple[Tensor, Tensor]:
    """Split ``input`` into ``(residual, skip)`` for a τ-weighted residual block.

    Identity in forward; in backward the residual-branch gradient is scaled by τ/sqrt(1+τ²) and the
    skip gradient by 1/sqrt(1+τ²), the delayed counterpart of :func:`residual_add`'s forward
    scales, so that gradients inside the branch stay unit-scaled (Unit Scaling §5.2).
    """
    check_tensor("residual_split", "input", input)
    a, b = _tau_weights(tau)
    return scale_bwd(input, a), scale_bwd(input, b)


def residual_add(residual: Tensor, skip: Tensor, tau: float = 1.0) -> Tensor:
    """Join a residual branch: ``(τ·residual + skip) / sqrt(1+τ²)`` in forward, identity backward.

    Pair with :func:`residual_split` (which applies the backward scales). Shapes must match.
    """
    check_tensor("residual_add", "residual", residual)
    check_tensor("residual_add", "skip", skip)
    a, b = _tau_weights(tau)
    return scale_fwd(residual, a) + scale_fwd(skip, b)


def residual_apply(fn: Callable[[Tensor], Tensor], input: Tensor, tau: float = 1.0) -> Tensor:
    """``residual_add(fn(r), s, tau)`` with ``r, s = residual_split(input, tau)``."""
    r, s = residual_split(input, tau)
    return residual_add(fn(r), s, tau)


def _norm_param_scale(input: Tensor, d: int) -> float:
    return max(input.numel() // max(d, 1), 1) ** -0.5


def layer_norm(
    input: Tensor,
    normalized_shape: list[int] | tuple[int, ...] | int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Unit-scaled ``F.layer_norm``: the normalisation is already unit-scale; the weight (gain)
    and bias gradients are scaled by B^-1/2 (B = number of normalised rows)."""
    check_tensor("layer_norm", "input", input, 1)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    s = _norm_param_scale(input, math.prod(shape))
    w = scale_bwd(weight, s) if weight is not None else None
    b = scale_bwd(bias, s) if bias is not None else None
    return F.layer_norm(input, shape, w, b, eps)


def rms_norm(
    input: Tensor,
    normalized_shape: list[int] | tuple[int, ...] | int,
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """Unit-scaled ``F.rms_norm``: output unit RMS; the gain gradient is scaled by B^-1/2."""
    check_tensor("rms_norm", "input", input, 1)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    s = _norm_param_scale(input, math.prod(shape))
    w = scale_bwd(weight, s) if weight is not None else None
    return F.rms_norm(input, shape, w, eps)
