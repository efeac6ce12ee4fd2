"""Scaled ops used by the reference decoder.

The u-μP path uses ``unit_scaling.functional`` where it provides the op with the expected
semantics, and otherwise these small pure-torch equivalents (same rules as reference §2.2):
forward scale on the (small) weight tensor, separate backward scales via a custom autograd
function holding Python floats (``torch.compile``-traceable, no graph breaks).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "cross_entropy",
    "embedding",
    "linear",
    "linear_readout",
    "residual_add",
    "residual_split",
    "rms_norm",
    "scale_fb",
    "sdpa",
    "silu_glu",
]


class _ScaleFB(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, fwd: float, bwd: float) -> Tensor:  # type: ignore[override]
        ctx.bwd = bwd
        return x * fwd

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        return g * ctx.bwd, None, None


def scale_fb(x: Tensor, fwd: float, bwd: float) -> Tensor:
    """``fwd·x`` in forward; the incoming gradient is multiplied by ``bwd`` in backward."""
    if fwd == bwd:
        return x if fwd == 1.0 else x * fwd
    return _ScaleFB.apply(x, float(fwd), float(bwd))


def _tokens(x: Tensor, last: int) -> int:
    return max(1, x.numel() // last)


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """Unit-scaled linear, constraint ``to_output_scale``: ``y = x·Wᵀ/√fan_in (+ b)``.

    x: ``[..., fan_in]``; w: ``[fan_out, fan_in]``. Weight and bias gradients × tokens^-1/2.
    """
    fan_in = w.shape[1]
    n = _tokens(x, fan_in)
    w = scale_fb(w, fan_in**-0.5, n**-0.5)
    if b is not None:
        b = scale_fb(b, 1.0, n**-0.5)
    return F.linear(x, w, b)


def linear_readout(x: Tensor, w: Tensor) -> Tensor:
    """Unit-scaled readout (μP output multiplier): ``y = x·Wᵀ/fan_in``, unconstrained backward
    (input gradient × fan_out^-1/2, weight gradient × tokens^-1/2)."""
    fan_out, fan_in = w.shape
    n = _tokens(x, fan_in)
    w = scale_fb(w, 1.0 / fan_in, n**-0.5)
    x = scale_fb(x, 1.0, fan_in * fan_out**-0.5)
    return F.linear(x, w)


def embedding(idx: Tensor, w: Tensor) -> Tensor:
    """Embedding lookup; the table's gradient × √(vocab/tokens) (≈ tokens/vocab rows get one)."""
    return F.embedding(idx, scale_fb(w, 1.0, math.sqrt(w.shape[0] / max(1, idx.numel()))))


def rms_norm(x: Tensor, w: Tensor | None, eps: float) -> Tensor:
    """RMSNorm over the last dim; the gain's gradient × tokens^-1/2."""
    d = x.shape[-1]
    if w is not None:
        w = scale_fb(w, 1.0, _tokens(x, d) ** -0.5)
    return F.rms_norm(x, (d,), w, eps)


def _log_interp(a: float, lo: float, hi: float) -> float:
    return lo ** (1 - a) * hi**a


def silu_glu_scale(mult: float) -> float:
    """The unit-scale factor of :func:`silu_glu` (reference §2.2)."""
    return _log_interp(mult**2 / (mult**2 + 1), 2.0, math.sqrt(2.0))


def silu_glu(x: Tensor, g: Tensor, mult: float = 1.0) -> Tensor:
    """Unit-scaled SwiGLU ``s·x·g·σ(mult·g)`` (= ``s/mult·x·silu(mult·g)``)."""
    return x * F.silu(g * mult) * (silu_glu_scale(mult) / mult)


def sdpa_scale(mult: float, head_dim: int, seq_len: int, causal: bool = True) -> float:
    """Output scale of :func:`sdpa`: 1/LI(a; lo, 1), a = m²/(m²+4d), lo = √(ln S/S) (causal)."""
    s = max(2, seq_len)
    lo = math.sqrt(math.log(s) / s) if causal else math.sqrt(1.0 / s)
    return 1.0 / _log_interp(mult**2 / (mult**2 + 4 * head_dim), lo, 1.0)


def sdpa(q: Tensor, k: Tensor, v: Tensor, mult: float = 1.0, scaled: bool = True) -> Tensor:
    """Causal attention with logits ``mult·q·kᵀ/d`` (μP 1/d rule), GQA when k/v have fewer heads.

    q: ``[B, Hq, S, d]``; k, v: ``[B, Hkv, S, d]`` with Hq % Hkv == 0. With ``scaled``, the output
    (and so the q/k/v gradients) is multiplied by :func:`sdpa_scale`.
    """
    d, s = q.shape[-1], q.shape[-2]
    if k.shape[1] != q.shape[1]:
        rep = q.shape[1] // k.shape[1]
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=mult / d)
    return out * sdpa_scale(mult, d, s) if scaled else out


def residual_split(x: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """(branch input, skip): identity forward; gradients × τ/√(1+τ²) and × 1/√(1+τ²)."""
    a = (1.0 + tau * tau) ** -0.5
    return scale_fb(x, 1.0, tau * a), scale_fb(x, 1.0, a)


def residual_add(branch: Tensor, skip: Tensor, tau: float) -> Tensor:
    """``(τ·branch + skip)/√(1+τ²)`` in forward; unscaled backward (the backward scales were
    applied at :func:`residual_split`, so the overall gradient is exact)."""
    a = (1.0 + tau * tau) ** -0.5
    return scale_fb(branch, tau * a, 1.0) + scale_fb(skip, a, 1.0)


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy whose value equals ``F.cross_entropy``; the logit gradient is
    ``(softmax − onehot)·V/√(V−1)`` (unit RMS, not divided by the token count)."""
    v = logits.shape[-1]
    n = _tokens(logits, v)
    logits = scale_fb(logits, 1.0, n * v / math.sqrt(max(1, v - 1)))
    return F.cross_entropy(logits.reshape(-1, v).float(), targets.reshape(-1))


# Use unit_scaling's ops where they implement exactly these rules (checked equal in
# tests/test_u_mup_ops.py). SwiGLU and attention keep the closed-form scales above: export_to_sp
# folds those constants, and unit_scaling's attention rule (mask-aware E[1/N]) differs slightly.
try:  # pragma: no branch
    import unit_scaling.functional as _U
except ImportError:  # pragma: no cover - unit-scaling is a declared dependency
    _U = None

_shim_linear, _shim_readout, _shim_embedding = linear, linear_readout, embedding
_shim_rms_norm, _shim_split, _shim_add, _shim_ce = (
    rms_norm,
    residual_split,
    residual_add,
    cross_entropy,
)
BACKEND = "shim"
if _U is not None and all(
    hasattr(_U, n)
    for n in (
        "linear",
        "linear_readout",
        "embedding",
        "rms_norm",
        "residual_split",
        "residual_add",
        "cross_entropy",
    )
):
    BACKEND = "unit_scaling"

    def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        return _U.linear(x, w, b)

    def linear_readout(x: Tensor, w: Tensor) -> Tensor:
        return _U.linear_readout(x, w)

    def embedding(idx: Tensor, w: Tensor) -> Tensor:
        return _U.embedding(idx, w)

    def rms_norm(x: Tensor, w: Tensor | None, eps: float) -> Tensor:
        return _U.rms_norm(x, (x.shape[-1],), w, eps)

    def residual_split(x: Tensor, tau: float) -> tuple[Tensor, Tensor]:
        return _U.residual_split(x, tau)

    def residual_add(branch: Tensor, skip: Tensor, tau: float) -> Tensor:
        return _U.residual_add(branch, skip, tau)

    def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
        v = logits.shape[-1]
        return _U.cross_entropy(logits.reshape(-1, v).float(), targets.reshape(-1))
