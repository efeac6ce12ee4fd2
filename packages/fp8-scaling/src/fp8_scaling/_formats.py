"""FP8 formats and a bit-exact, pure-torch simulation of the casts into them.

The four formats are the OCP pair used by Hopper GPUs (``E4M3``, ``E5M2``) and the "fnuz" pair
(finite, no negative zero) that the Graphcore IPU used for the experiments of Perez et al. 2023,
"Training and inference of large language models using 8-bit floating point", Section 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "E4M3",
    "E4M3FNUZ",
    "E5M2",
    "E5M2FNUZ",
    "FORMATS",
    "FP8Format",
    "decode",
    "get_format",
    "simulate_cast",
    "simulate_round",
]


@dataclass(frozen=True)
class FP8Format:
    """An 8-bit floating-point format (1 sign, ``exp_bits`` exponent, ``man_bits`` mantissa bits).

    Attributes:
        name: short name (``"e4m3"``, ``"e5m2"``, ``"e4m3fnuz"``, ``"e5m2fnuz"``).
        exp_bits / man_bits: field widths.
        exp_bias: exponent bias of the encoding.
        max: largest finite value (448, 57344, 240, 57344).
        has_inf: whether the encoding has infinities (only OCP E5M2).
        fnuz: True for the "finite, no negative zero" variants (NaN is the code 0x80).
        dtype_name: name of the matching ``torch`` dtype attribute.
    """

    name: str
    exp_bits: int
    man_bits: int
    exp_bias: int
    max: float
    has_inf: bool
    fnuz: bool
    dtype_name: str

    @property
    def dtype(self) -> torch.dtype:
        """The matching ``torch.float8_*`` dtype."""
        return getattr(torch, self.dtype_name)

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value, ``2**(1 - exp_bias)``."""
        return 2.0 ** (1 - self.exp_bias)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive subnormal value, ``2**(1 - exp_bias - man_bits)``."""
        return 2.0 ** (1 - self.exp_bias - self.man_bits)

    def __repr__(self) -> str:
        return f"FP8Format({self.name}, max={self.max:g})"


E4M3 = FP8Format("e4m3", 4, 3, 7, 448.0, False, False, "float8_e4m3fn")
E5M2 = FP8Format("e5m2", 5, 2, 15, 57344.0, True, False, "float8_e5m2")
E4M3FNUZ = FP8Format("e4m3fnuz", 4, 3, 8, 240.0, False, True, "float8_e4m3fnuz")
E5M2FNUZ = FP8Format("e5m2fnuz", 5, 2, 16, 57344.0, False, True, "float8_e5m2fnuz")
FORMATS = {f.name: f for f in (E4M3, E5M2, E4M3FNUZ, E5M2FNUZ)}


def get_format(fmt: FP8Format | str) -> FP8Format:
    """Return the :class:`FP8Format` for ``fmt`` (a format or one of the names in ``FORMATS``)."""
    if isinstance(fmt, FP8Format):
        return fmt
    if isinstance(fmt, str) and fmt.lower() in FORMATS:
        return FORMATS[fmt.lower()]
    raise ValueError(
        f"unsupported FP8 format {fmt!r}; expected an FP8Format or one of {sorted(FORMATS)}"
    )


def simulate_round(
    x: torch.Tensor,
    fmt: FP8Format | str,
    saturate: bool = True,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Round ``x`` to the values of ``fmt``, returning float32 (same shape).

    Round-to-nearest-even (or stochastic rounding, unbiased) with gradual underflow. Finite values
    beyond the range saturate to ``±max`` when ``saturate``; otherwise they overflow to ``±inf``
    (E5M2) or NaN (formats without infinities). Infinite inputs become ``±max`` when saturating a
    format without infinities, to match ``torch``'s saturating casts; NaN stays NaN.

    Args:
        x: floating tensor of any shape (computed in float32).
        fmt: target format.
        saturate: clamp to the finite range instead of overflowing.
        rounding: ``"nearest"`` (RNE) or ``"stochastic"``.
        generator: random generator for stochastic rounding.
    """
    fmt = get_format(fmt)
    if not x.is_floating_point():
        raise TypeError(f"simulate_round needs a floating tensor, got dtype {x.dtype}")
    if rounding not in ("nearest", "stochastic"):
        raise ValueError(f"rounding must be 'nearest' or 'stochastic', got {rounding!r}")
    xf = x.float()
    a = xf.abs()
    # exponent of |x| (frexp gives a = m·2^e with m in [0.5, 1)), floored at the subnormal range.
    _, e = torch.frexp(a)
    emin = 1 - fmt.exp_bias
    e_unb = torch.clamp(e.to(torch.int32) - 1, min=emin)
    quantum = torch.ldexp(torch.ones_like(a), (e_unb - fmt.man_bits).to(torch.float32))
    scaled = a / quantum  # exact: division by a power of two inside the float32 range
    if rounding == "nearest":
        r = torch.round(scaled)  # round half to even
    else:
        noise = torch.rand(a.shape, generator=generator, device=a.device, dtype=torch.float32)
        r = torch.floor(scaled + noise)
    mag = r * quantum
    finite = torch.isfinite(a)
    if saturate:
        mag = torch.where(mag > fmt.max, torch.full_like(mag, fmt.max), mag)
        mag = torch.where(torch.isinf(a), torch.full_like(mag, fmt.max), mag)
    else:
        over = (mag > fmt.max) | torch.isinf(a)
        mag = torch.where(over, torch.full_like(mag, float("inf")), mag)
    out = torch.copysign(mag, xf)
    if not fmt.has_inf:
        out = torch.where(torch.isinf(out), torch.full_like(out, float("nan")), out)
    out = torch.where(finite | torch.isinf(a), out, torch.full_like(out, float("nan")))
    return out.reshape(x.shape)


def simulate_cast(x: torch.Tensor, fmt: FP8Format | str, saturate: bool = True) -> torch.Tensor:
    """Encode ``x`` into the 8-bit codes of ``fmt`` (uint8, same shape), computed arithmetically.

    Bit-exact with ``x.clamp(-max, max).to(fmt.dtype)`` (``saturate=True``) and with the plain
    ``x.to(fmt.dtype)`` of a torch whose cast overflows rather than saturates (``saturate=False``)
    for every bf16 input; the tests check all 65,536 patterns.

    Args:
        x: floating tensor of any shape.
        fmt: target format.
        saturate: see :func:`simulate_round`.
    """
    fmt = get_format(fmt)
    v = simulate_round(x, fmt, saturate=saturate)
    sign = torch.signbit(x.float()).reshape(v.shape)
    a = v.abs()
    nan = torch.isnan(v)
    inf = torch.isinf(v)
    emin = 1 - fmt.exp_bias
    _, e = torch.frexp(a)
    e_unb = e.to(torch.int32) - 1
    sub = a < fmt.min_normal
    exp_field = torch.where(sub, torch.zeros_like(e_unb), e_unb + fmt.exp_bias)
    shift = torch.where(sub, torch.full_like(e_unb, emin), e_unb) - fmt.man_bits
    man = torch.ldexp(a, (-shift).to(torch.float32)).to(torch.int32)
    man = torch.where(sub, man, man - (1 << fmt.man_bits))
    code = (exp_field << fmt.man_bits) | man
    if fmt.fnuz:
        code = torch.where(sign & (code != 0), code | 0x80, code)  # no negative zero
        code = torch.where(nan, torch.full_like(code, 0x80), code)
    else:
        code = torch.where(sign, code | 0x80, code)
        code = torch.where(nan, torch.where(sign, 0xFF, 0x7F), code)
        if fmt.has_inf:
            inf_code = ((1 << fmt.exp_bits) - 1) << fmt.man_bits
            code = torch.where(inf, torch.where(sign, inf_code | 0x80, inf_code), code)
    return code.to(torch.uint8).reshape(x.shape)


def decode(codes: torch.Tensor, fmt: FP8Format | str) -> torch.Tensor:
    """Decode uint8 codes of ``fmt`` into float32 values (same shape), arithmetically."""
    fmt = get_format(fmt)
    if codes.dtype != torch.uint8:
        raise TypeError(f"decode needs uint8 codes, got {codes.dtype}")
    c = codes.to(torch.int32)
    sign = (c >> 7) & 1
    exp_field = (c >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    man = c & ((1 << fmt.man_bits) - 1)
    sub = exp_field == 0
    frac = torch.where(sub, man.float(), (man + (1 << fmt.man_bits)).float())
    e = torch.where(sub, torch.full_like(exp_field, 1), exp_field) - fmt.exp_bias - fmt.man_bits
    v = torch.ldexp(frac, e.float())
    v = torch.where(sign.bool(), -v, v)
    if fmt.fnuz:
        v = torch.where(c == 0x80, torch.full_like(v, float("nan")), v)
    else:
        all_ones = exp_field == (1 << fmt.exp_bits) - 1
        if fmt.has_inf:
            v = torch.where(
                all_ones & (man == 0), torch.copysign(torch.full_like(v, float("inf")), v), v
            )
            v = torch.where(all_ones & (man != 0), torch.full_like(v, float("nan")), v)
        else:
            v = torch.where(
                all_ones & (man == (1 << fmt.man_bits) - 1), torch.full_like(v, float("nan")), v
            )
    return v
