"""Unit-scaled scaled-dot-product attention with causal, arbitrary, sliding-window masks and GQA.

Logits are ``mult · q kᵀ / d`` (the μP 1/d rule; ``mult`` is u-μP's α_attn-softmax). The scale
rule is derived for near-uniform attention over N_i attended keys per query i:

* output and value-gradient RMS² ≈ e^{σ²}·E[1/N] / (1-p), σ² = mult²/d the logit variance,
  p the dropout probability (value gradients also gain the GQA group size G and S_q/S_k);
* query/key-gradient RMS² ≈ (mult²·d_v/d²)·e^{σ²}·E[(1/N)(1-1/N)] / (1-p).

E[·] is the mean over queries, computed exactly from the mask, so the rule holds for any mask
(the anchor's rule only knew ``is_causal``). Constrained (default ``to_output_scale``), a single
scale is applied to the output in forward and to q, k, v in backward: an exact gradient of a
rescaled attention, implemented by pre-scaling ``v`` (fused into the projection's copy).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_mult, check_tensor
from ._constraints import ConstraintLike, resolve_constraint, to_output_scale
from ._scale import scale, scale_bwd
from ._scale_models import causal_key_stats

__all__ = ["attended_key_stats", "build_attention_mask", "scaled_dot_product_attention"]

MASKED_THRESHOLD = -1e4
"""Additive-mask entries below this value count as masked (e^-1e4 underflows to 0 in fp32)."""


def build_attention_mask(
    s_q: int,
    s_k: int,
    *,
    is_causal: bool = False,
    window: int | None = None,
    attn_mask: Tensor | None = None,
    device: torch.device | str | None = None,
) -> Tensor | None:
    """Combine ``is_causal``, a sliding ``window`` and ``attn_mask`` into one boolean mask.

    Returns ``None`` when nothing masks. Boolean masks use torch's convention (True = attend);
    float masks are additive and are converted with ``mask > MASKED_THRESHOLD``.
    Causal: query i attends keys j <= i. Window w: causal → i-w < j <= i; otherwise |i-j| < w.
    Shape: broadcastable to ``(*, s_q, s_k)``.
    """
    mask = None
    if is_causal or window:
        dev = attn_mask.device if attn_mask is not None else device
        i = torch.arange(s_q, device=dev)[:, None]
        j = torch.arange(s_k, device=dev)[None, :]
        mask = j <= i if is_causal else torch.ones(s_q, s_k, dtype=torch.bool, device=dev)
        if window:
            mask = mask & ((i - j) < window) if is_causal else mask & ((i - j).abs() < window)
    if attn_mask is not None:
        allowed = attn_mask if attn_mask.dtype == torch.bool else attn_mask > MASKED_THRESHOLD
        mask = allowed if mask is None else (allowed & mask)
    return mask


def attended_key_stats(mask: Tensor, s_q: int, s_k: int) -> tuple[Tensor, Tensor]:
    """``(E[1/N], E[1/N²])`` as 0-d fp32 tensors for a boolean mask (True = attend).

    N is the number of keys each query attends to (fully masked rows count as 1).
    """
    full = mask.broadcast_to((*mask.shape[:-2], s_q, s_k))
    n = full.sum(-1, dtype=torch.float32).clamp_min(1.0)
    inv = n.reciprocal()
    return inv.mean(), (inv * inv).mean()


def _check_shapes(q: Tensor, k: Tensor, v: Tensor) -> int:
    for name, t in (("query", q), ("key", k), ("value", v)):
        check_tensor("scaled_dot_product_attention", name, t, 2)
    if k.shape[-1] != q.shape[-1] or k.shape[-2] != v.shape[-2] or k.dim() != q.dim():
        raise ValueError(
            "scaled_dot_product_attention: expected query (*, Hq, Sq, d), key (*, Hkv, Sk, d) and "
            f"value (*, Hkv, Sk, dv); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}."
        )
    if q.dim() < 3:
        return 1
    hq, hkv = q.shape[-3], k.shape[-3]
    if hkv != v.shape[-3] or hq % hkv:
        raise ValueError(
            f"scaled_dot_product_attention: query heads ({hq}) must be a multiple of key/value "
            f"heads ({hkv}, value {v.shape[-3]}) for GQA/MQA; choose n_kv_heads dividing n_heads."
        )
    return hq // hkv


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    window: int | None = None,
    mult: float = 1.0,
    value_correlation: float = 0.0,
    constraint: ConstraintLike = "to_output_scale",
) -> Tensor:
    """Unit-scaled ``F.scaled_dot_product_attention`` (causal, masks, sliding window, GQA/MQA).

    Args:
        query: ``(*, Hq, Sq, d)``; key: ``(*, Hkv, Sk, d)``; value: ``(*, Hkv, Sk, dv)``.
            GQA/MQA is detected from Hq > Hkv (Hq must be a multiple of Hkv).
        attn_mask: boolean (True = attend) or additive float mask broadcastable to
            ``(*, Hq, Sq, Sk)``; may be combined with ``is_causal`` and ``window``.
        dropout_p: attention-probability dropout (its variance inflation is undone).
        is_causal: query i attends keys j <= i.
        scale: not supported, the logit scale is ``mult / d`` (pass ``mult`` instead).
        enable_gqa: accepted for torch compatibility; GQA is automatic.
        window: sliding-window length w (causal: the last w keys; otherwise |i-j| < w).
        mult: α_attn-softmax, the logit multiplier.
        value_correlation: ρ, the expected correlation between value (and output-gradient)
            vectors at different positions. Near-uniform attention averages them, so
            Var(output) = ρ + (1-ρ)·E[1/N]. 0 (default) is exact for independent inputs; inside
            deep causal models the residual stream shares a component across positions and
            ρ ≈ 0.1 keeps attention outputs near unit scale (the modules' default).
        constraint: ``to_output_scale`` (default) ties q/k/v gradient scales to the output scale;
            ``None`` makes the output and all three input gradients unit-scaled.

    Returns:
        ``(*, Hq, Sq, dv)`` with unit RMS for N(0, 1) inputs.
    """
    out, _ = _attention(
        query, key, value, attn_mask, dropout_p, is_causal, scale, window, mult,
        value_correlation, constraint, fold=False,
    )  # fmt: skip
    return out


def _attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None,
    dropout_p: float,
    is_causal: bool,
    scale: float | None,
    window: int | None,
    mult: float,
    value_correlation: float,
    constraint: ConstraintLike,
    *,
    fold: bool,
) -> tuple[Tensor, float]:
    """:func:`scaled_dot_product_attention`, returning ``(output, s)``.

    With ``fold=True`` a constrained Python-float scale ``s`` is not applied (the output is the
    unscaled attention) and is returned instead, for the caller to fold into the next op's
    weight (``Attention`` folds it into its output projection, so the scale costs no kernel in
    forward or backward). Otherwise ``s`` is 1.0 and the output is fully scaled.
    """

    groups = _check_shapes(query, key, value)
    m = check_mult("scaled_dot_product_attention", mult)
    if scale is not None:
        raise ValueError(
            f"scaled_dot_product_attention: scale={scale!r} is not supported; the logit scale is "
            "mult/d_head (μP). Fix: pass mult=scale*d_head instead."
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(
            f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}."
        )
    if window is not None and (not isinstance(window, int) or window < 1):
        raise ValueError(
            f"scaled_dot_product_attention: window must be an int >= 1, got {window!r}."
        )
    d, dv = query.shape[-1], value.shape[-1]
    s_q, s_k = query.shape[-2], key.shape[-2]
    mask: Tensor | None = None
    if attn_mask is None:
        r1, r2 = causal_key_stats(s_q, s_k, is_causal, window or 0)
        if window:
            mask = build_attention_mask(
                s_q, s_k, is_causal=is_causal, window=window, device=query.device
            )
            is_causal = False
    else:
        mask = build_attention_mask(
            s_q, s_k, is_causal=is_causal, window=window, attn_mask=attn_mask
        )
        r1, r2 = attended_key_stats(mask, s_q, s_k)  # type: ignore[arg-type]
        if attn_mask.dtype != torch.bool and not (is_causal or window):
            mask = attn_mask  # keep the additive values (e.g. ALiBi biases)
        elif attn_mask.dtype != torch.bool:
            mask = attn_mask.masked_fill(~mask, float("-inf"))  # type: ignore[operator]
        is_causal = False

    rho = float(value_correlation)
    if not 0.0 <= rho < 1.0:
        raise ValueError(
            f"scaled_dot_product_attention: value_correlation must be in [0, 1), got {rho}."
        )
    keep = 1.0 - dropout_p
    spread = math.exp(min(m * m / d, 80.0)) / keep
    ratio = groups * s_q / s_k
    qk = m * m * dv / (d * d)
    fn = resolve_constraint(constraint)
    folded = 1.0
    if isinstance(r1, Tensor):
        out_var = (r1 * spread).clamp(max=1.0) * (1.0 - rho) + rho
        alpha = out_var.rsqrt()
        beta_v = ((r1 * spread).clamp(max=1.0) * (1.0 - rho) + rho).mul(ratio).rsqrt()
        qk_var = ((r1 - r2) * (spread * qk)).clamp_min(1e-12)
        beta_q, beta_k = qk_var.rsqrt(), (qk_var * ratio).rsqrt()
    else:
        alpha = (min(1.0, r1 * spread) * (1.0 - rho) + rho) ** -0.5
        beta_v = ((min(1.0, r1 * spread) * (1.0 - rho) + rho) * ratio) ** -0.5
        qk_var = max((r1 - r2) * spread * qk, 1e-12)
        beta_q, beta_k = qk_var**-0.5, (qk_var * ratio) ** -0.5
    if fn is not None:
        s = alpha if fn is to_output_scale else fn(alpha, beta_v)
        if fold and isinstance(s, float):  # scaling v by s scales the output and q/k/v grads
            q, k, v, folded = query, key, value, s
        else:
            q, k, v = query, key, (value * s if isinstance(s, float) else scale_fixed(value, s))
    else:
        q = scale_bwd(query, beta_q / alpha)
        k = scale_bwd(key, beta_k / alpha)
        v = _scale(value, alpha, beta_v)
    out = F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=mask,
        dropout_p=dropout_p,
        is_causal=is_causal,
        scale=m / d,
        enable_gqa=groups > 1,
    )
    return out, folded


_scale = scale


def scale_fixed(x: Tensor, s: Tensor) -> Tensor:
    """Multiply by a 0-d (non-differentiable) tensor scale in fp32, keeping ``x.dtype``."""
    return _scale(x, s, s)
