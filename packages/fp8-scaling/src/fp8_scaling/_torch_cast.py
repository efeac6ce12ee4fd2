"""FP8 casts written as plain torch ops, for ``torch.compile`` to fuse (the compiled fast path).

Under ``torch.compile`` these functions are traced into the graph, so inductor generates the
kernels itself and may fuse the amax reduction, the scale arithmetic, the cast and the transposed
copy with neighbouring ops (no opaque custom-op boundary, no Python dispatch per call). They
compute the same values as :func:`fp8_scaling.compute_bias` / :func:`fp8_scaling.quantize`:
the power-of-two scale of Perez et al. 2023, Section 3 is built from the float32 exponent and
mantissa bits of the amax (integer arithmetic only), so ``2**b`` is exact and needs no ``log2``,
``frexp`` or ``exp2``.
"""

from __future__ import annotations

import torch

from ._formats import FP8Format
from ._scaling import BIAS_CLIP

__all__ = ["amax_torch", "cast_pow2_torch", "cast_scaled_torch", "pow2_scales_torch"]


def _fmax_bits(fmax: float) -> tuple[int, int]:
    import struct

    bits = struct.unpack("<i", struct.pack("<f", fmax))[0]
    return ((bits >> 23) & 0xFF) - 127, bits & 0x7FFFFF


def pow2_scales_torch(
    amax: torch.Tensor, fmt: FP8Format, margin: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(2**b, 2**-b)`` float32 0-d for ``b = compute_bias(amax, fmt, margin)`` (amax >= 0).

    Bit arithmetic: with ``amax = 1.m_a * 2**e_a`` and ``fmax = 1.m_f * 2**e_f``,
    ``floor(log2(fmax / amax)) = e_f - e_a - [m_a > m_f]``. Zero and subnormal amaxes give an
    exponent field of 0 and infinity a field of 255, so the clip to [-31, 31] yields the
    documented +31 / -31. A NaN amax must be mapped to inf by the caller (as ``amax`` does).
    """
    ef, mf = _fmax_bits(fmt.max)
    bits = amax.float().reshape(()).view(torch.int32)
    ea = ((bits >> 23) & 0xFF) - 127
    b = (ef - ea) - ((bits & 0x7FFFFF) > mf).to(torch.int32)
    b = torch.clamp(b - margin, -BIAS_CLIP, BIAS_CLIP)
    scale = ((b + 127) << 23).view(torch.float32)
    inv = ((127 - b) << 23).view(torch.float32)
    return scale, inv


def _cast(x: torch.Tensor, scale: torch.Tensor, fmt: FP8Format, transpose: bool):
    xs = x.float() * scale
    q = torch.clamp(xs, -fmt.max, fmt.max)
    q = torch.where(torch.isinf(x), torch.full_like(q, float("nan")), q).to(fmt.dtype)
    qt = q.t().contiguous() if transpose else None
    return q, qt


def amax_torch(x: torch.Tensor) -> torch.Tensor:
    """Absolute max of ``x`` as float32 0-d, NaN counted as inf (torch ops, for inductor)."""
    a = x.abs().amax().float()
    return torch.where(torch.isnan(a), torch.full_like(a, float("inf")), a)


def cast_pow2_torch(x: torch.Tensor, fmt: FP8Format, margin: int, transpose: bool):
    """JIT power-of-two cast of a 2-D tensor: ``(q, qt or None, inv_scale, amax)``.

    ``q`` (M, N) and ``qt`` (N, M) in ``fmt.dtype``; ``inv_scale`` float32 0-d.
    """
    a = amax_torch(x)
    scale, inv = pow2_scales_torch(a, fmt, margin)
    q, qt = _cast(x, scale, fmt, transpose)
    return q, qt, inv, a


def cast_scaled_torch(x: torch.Tensor, scale: torch.Tensor, fmt: FP8Format, transpose: bool):
    """Cast with a given float32 0-d scale (delayed/constant): ``(q, qt or None, amax of x)``."""
    q, qt = _cast(x, scale.float(), fmt, transpose)
    return q, qt, amax_torch(x)
