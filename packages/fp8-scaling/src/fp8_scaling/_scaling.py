"""Scaling biases (integer powers of two) and fp32 scales from a tensor's absolute maximum.

Perez et al. 2023, Section 3 ("FP8-AMAX"): the scaling bias of a tensor ``X`` in format ``F`` is
``b = clip(floor(log2(max(F) / amax(X))) - margin, -31, 31)`` and ``X8 = q_F(X * 2**b)``. Because
``2**b`` is a power of two the scaling itself is exact, and with ``margin = 0`` the largest element
lands in ``(max/2, max]``.
"""

from __future__ import annotations

import math

import torch

from ._formats import FP8Format, get_format

__all__ = ["BIAS_CLIP", "amax", "bias_to_scale", "compute_bias", "compute_scale", "quantize"]

BIAS_CLIP = 31


def amax(x: torch.Tensor) -> torch.Tensor:
    """Per-tensor absolute maximum as a float32 0-d tensor (no host sync).

    NaN entries count as ``+inf`` so that a tensor holding NaN is never given a finite scale.
    An empty tensor has amax 0.
    """
    if not x.is_floating_point():
        raise TypeError(f"amax needs a floating tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        return torch.zeros((), dtype=torch.float32, device=x.device)
    a = x.abs().amax().float()
    return torch.where(torch.isnan(a), torch.full_like(a, float("inf")), a)


def compute_bias(
    amax_value: torch.Tensor | float, fmt: FP8Format | str, margin: int = 0
) -> torch.Tensor:
    """Integer scaling bias ``clip(floor(log2(fmt.max / amax)) - margin, -31, 31)`` (float32).

    The floor of the log is computed exactly from the binary exponents and mantissas (no rounding
    of ``fmt.max / amax``), so ``amax * 2**b <= fmt.max < amax * 2**(b + 1)`` holds for every
    finite positive amax whose bias is not clipped.

    Edge cases (all device-side, no host sync):
        * ``amax == 0`` (or so small that the bias exceeds 31, e.g. float32 subnormals): ``+31``.
        * ``amax == inf``: ``-31`` (values that are finite shrink; infinities are then flagged
          as NaN by :func:`quantize`).
        * ``amax`` NaN: NaN, which makes the scale NaN and every quantized value NaN (never a
          silently finite result).

    Args:
        amax_value: non-negative float tensor of any shape (per-tensor: 0-d) or a Python float.
        fmt: the FP8 format the tensor will be cast to.
        margin: extra headroom in powers of two (Perez et al. use 0; some recipes use 3 for
            gradients).

    Returns:
        float32 tensor of the same shape as ``amax_value`` holding integers in [-31, 31] (or NaN).
    """
    fmt = get_format(fmt)
    a = torch.as_tensor(amax_value, dtype=torch.float32)
    if not isinstance(margin, int):
        raise TypeError(f"margin must be an int, got {type(margin).__name__}")
    m_a, e_a = torch.frexp(a)  # a = m_a * 2**e_a, m_a in [0.5, 1)
    m_f, e_f = math.frexp(fmt.max)
    b = (e_f - e_a).float() - (m_a > m_f).float()
    b = torch.where(a == 0, torch.full_like(b, float("inf")), b)
    b = torch.where(torch.isinf(a), torch.full_like(b, -float("inf")), b)
    b = torch.clamp(b - margin, -BIAS_CLIP, BIAS_CLIP)
    return torch.where(torch.isnan(a), torch.full_like(b, float("nan")), b)


def bias_to_scale(bias: torch.Tensor) -> torch.Tensor:
    """``2**bias`` as float32 (exact for integer biases in [-31, 31]); NaN stays NaN."""
    return torch.exp2(bias.float())


def compute_scale(
    amax_value: torch.Tensor | float, fmt: FP8Format | str, margin: int = 0
) -> torch.Tensor:
    """Non-power-of-two float32 scale ``fmt.max / amax / 2**margin`` (the fp32-scale convention).

    ``amax == 0`` gives scale 1 (nothing to scale); ``amax`` inf gives ``fmt.max / float32 max``;
    NaN gives NaN. The result is clamped to the finite float32 range so a subnormal amax never
    produces an infinite scale.
    """
    fmt = get_format(fmt)
    a = torch.as_tensor(amax_value, dtype=torch.float32)
    fmax32 = torch.finfo(torch.float32).max
    s = fmt.max / torch.clamp(a, max=fmax32) / (2.0**margin)
    s = torch.where(a == 0, torch.ones_like(s), s)
    return torch.clamp(s, max=fmax32)


def quantize(x: torch.Tensor, scale: torch.Tensor, fmt: FP8Format | str) -> torch.Tensor:
    """Saturating cast ``q_F(x * scale)`` into ``fmt.dtype`` (same shape as ``x``).

    Finite values beyond the range saturate to ``±fmt.max``; infinite inputs become NaN, so an
    overflow upstream is never hidden. ``scale`` is a float32 tensor broadcastable to ``x``.
    """
    fmt = get_format(fmt)
    xs = x.float() * scale
    q = torch.clamp(xs, -fmt.max, fmt.max)
    q = torch.where(torch.isinf(x), torch.full_like(q, float("nan")), q)
    return q.to(fmt.dtype)
