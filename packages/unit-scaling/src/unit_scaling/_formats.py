"""Simulated floating-point number formats (ExMy), bit-exact with torch's float8 casts.

A value is rounded to the format's grid and returned in the input's dtype, so any op can be
simulated in a low-precision format on any device. Rounding is to nearest-even (default, what
``tensor.to(torch.float8_*)`` does) or stochastic. Overflow follows torch's non-saturating casts
(inf where the format has one, else NaN) unless ``saturate=True`` (clamp to ±max, OCP "satfinite").
The implementation uses elementwise float/int ops only, so ``torch.compile(fullgraph=True)``
traces it with no graph break.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["E2M1", "E4M3", "E4M3FNUZ", "E5M2", "E5M2FNUZ", "FP16", "FPFormat"]

_ENCODINGS = ("ieee", "fn", "fnuz", "finite")


@dataclass(frozen=True)
class FPFormat:
    """A floating-point format with ``exponent_bits`` E and ``mantissa_bits`` M.

    Args:
        exponent_bits: 1..7. mantissa_bits: 0..22.
        encoding: how special values are encoded:
            ``"ieee"`` – the top exponent code is inf/NaN (E5M2, FP16);
            ``"fn"`` – no inf, only the all-ones code is NaN (OCP E4M3 = ``float8_e4m3fn``);
            ``"fnuz"`` – no inf, no negative zero, NaN is the ``-0`` code (``*_fnuz`` dtypes);
            ``"finite"`` – no inf and no NaN (OCP FP4/FP6); overflow always saturates.
        bias: exponent bias (default 2^(E-1) for ``fnuz``, else 2^(E-1)-1).
        saturate: clamp overflow (and ±inf) to ±max instead of producing inf/NaN.
        rounding: ``"nearest"`` (round half to even) or ``"stochastic"``.
    """

    exponent_bits: int
    mantissa_bits: int
    encoding: str = "ieee"
    bias: int | None = None
    saturate: bool = False
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        e, m = self.exponent_bits, self.mantissa_bits
        if not isinstance(e, int) or not 1 <= e <= 7:
            raise ValueError(
                f"FPFormat: exponent_bits must be an int in [1, 7], got {e!r}; a format needs at "
                "least one exponent bit (use an integer type for fixed point), and 8-bit exponents "
                "are native torch dtypes (bfloat16, float32)."
            )
        if not isinstance(m, int) or not 0 <= m <= 22:
            raise ValueError(f"FPFormat: mantissa_bits must be an int in [0, 22], got {m!r}.")
        if self.encoding not in _ENCODINGS:
            raise ValueError(
                f"FPFormat: encoding must be one of {_ENCODINGS}, got {self.encoding!r}."
            )
        if self.rounding not in ("nearest", "stochastic"):
            raise ValueError(
                f"FPFormat: rounding must be 'nearest' or 'stochastic', got {self.rounding!r}."
            )
        if self.encoding == "ieee" and e == 1:
            raise ValueError("FPFormat: an 'ieee' format needs >= 2 exponent bits; use 'finite'.")
        if self.encoding == "fn" and e + m < 2:
            raise ValueError("FPFormat: an 'fn' format needs E + M >= 2 bits.")

    # ---- derived constants -------------------------------------------------------------------
    @property
    def exponent_bias(self) -> int:
        if self.bias is not None:
            return self.bias
        return 2 ** (self.exponent_bits - 1) - (0 if self.encoding == "fnuz" else 1)

    @property
    def min_exponent(self) -> int:
        """Exponent of the smallest normal number (1 - bias)."""
        return 1 - self.exponent_bias

    @property
    def max_exponent(self) -> int:
        top = 2**self.exponent_bits - 1
        return (top - 1 if self.encoding == "ieee" else top) - self.exponent_bias

    @property
    def max_value(self) -> float:
        """Largest finite value (e.g. 448 for E4M3, 57344 for E5M2, 240 for E4M3FNUZ)."""
        m = self.mantissa_bits
        frac = 2.0 - 2.0 ** (1 - m) if self.encoding == "fn" else 2.0 - 2.0**-m
        return frac * 2.0**self.max_exponent

    @property
    def min_normal(self) -> float:
        return 2.0**self.min_exponent

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (self.min_exponent - self.mantissa_bits)

    @property
    def has_inf(self) -> bool:
        return self.encoding == "ieee"

    @property
    def has_nan(self) -> bool:
        return self.encoding != "finite"

    def __str__(self) -> str:
        return f"E{self.exponent_bits}M{self.mantissa_bits}[{self.encoding}]"

    # ---- quantisation ------------------------------------------------------------------------
    def quantise(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Round ``x`` (fp32/bf16/fp16, any shape) to this format; returns ``x.dtype``.

        With the defaults this equals ``x.to(float8_dtype).to(x.dtype)`` bit for bit for the
        four torch float8 dtypes (tested over all 65,536 bf16 bit patterns).
        """
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(
                f"FPFormat.quantise expects a floating-point tensor, got "
                f"{getattr(x, 'dtype', type(x).__name__)}."
            )
        x32 = x.float()
        a = x32.abs()
        m = self.mantissa_bits
        exp_field = (x32.view(torch.int32) >> 23) & 0xFF
        e = (exp_field - 127).clamp(min=self.min_exponent)
        q = ((e - m + 127) << 23).view(torch.float32)  # 2^(e-m): the grid spacing at |x|
        scaled = a / q  # exact: division by a power of two
        if self.rounding == "stochastic":
            noise = torch.rand(
                scaled.shape, device=scaled.device, dtype=torch.float32, generator=generator
            )
            r = torch.floor(scaled + noise)
        else:
            r = torch.round(scaled)  # round half to even
        y = r * q
        big = self.max_value
        if self.saturate or self.encoding == "finite":
            y = y.clamp(max=big)  # also maps +inf to max
        elif self.has_inf:
            y = torch.where(y > big, torch.full_like(y, float("inf")), y)
        else:
            y = torch.where(y > big, torch.full_like(y, float("nan")), y)
        y = torch.where(torch.isnan(x32), x32, y)
        if self.encoding == "finite":
            y = torch.where(torch.isnan(x32), torch.full_like(y, big), y)
        y = torch.copysign(y, x32)
        if self.encoding == "fnuz":
            y = torch.where(y == 0, torch.zeros_like(y), y)  # no negative zero
        return y.to(x.dtype)

    def quantise_fwd(self, x: Tensor) -> Tensor:
        """Quantise in forward; pass the gradient straight through."""
        return _QuantFwd.apply(x, self)

    def quantise_bwd(self, x: Tensor) -> Tensor:
        """Identity in forward; quantise the gradient in backward."""
        return _QuantBwd.apply(x, self)

    @property
    def torch_dtype(self) -> torch.dtype | None:
        """The torch dtype with identical semantics, if any."""
        return _TORCH_DTYPES.get((self.exponent_bits, self.mantissa_bits, self.encoding))


# ctx-in-forward style (no separate setup_context): torch then skips an ``inspect`` signature
# binding on every eager ``apply``
class _QuantFwd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, fmt: FPFormat) -> Tensor:  # type: ignore[no-untyped-def,override]
        return fmt.quantise(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def,override]
        return grad, None


class _QuantBwd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, fmt: FPFormat) -> Tensor:  # type: ignore[no-untyped-def,override]
        ctx.fmt = fmt
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def,override]
        return ctx.fmt.quantise(grad), None


def _torch_saturates(dtype: torch.dtype) -> bool:
    """Whether this torch build's ``.to(dtype)`` clamps overflow (torch's semantics vary)."""
    return bool(torch.isfinite(torch.tensor([1e30]).to(dtype).float()).item())


E4M3 = FPFormat(4, 3, "fn", saturate=_torch_saturates(torch.float8_e4m3fn))
"""OCP FP8 E4M3 (``torch.float8_e4m3fn``): max 448, no inf. ``saturate`` matches the installed
torch's cast (recent torch clamps overflow and ±inf to ±448)."""
E5M2 = FPFormat(5, 2, "ieee", saturate=_torch_saturates(torch.float8_e5m2))
"""OCP FP8 E5M2 (``torch.float8_e5m2``): max 57344, with inf."""
E4M3FNUZ = FPFormat(4, 3, "fnuz", saturate=_torch_saturates(torch.float8_e4m3fnuz))
"""``torch.float8_e4m3fnuz``: max 240, no inf, no negative zero."""
E5M2FNUZ = FPFormat(5, 2, "fnuz", saturate=_torch_saturates(torch.float8_e5m2fnuz))
"""``torch.float8_e5m2fnuz``: max 57344, no inf, no negative zero."""
E2M1 = FPFormat(2, 1, "finite")
"""OCP FP4 E2M1: values {0, 0.5, 1, 1.5, 2, 3, 4, 6}, no inf/NaN (saturating)."""
FP16 = FPFormat(5, 10, "ieee")
"""IEEE half precision."""

_TORCH_DTYPES = {
    (4, 3, "fn"): torch.float8_e4m3fn,
    (5, 2, "ieee"): torch.float8_e5m2,
    (4, 3, "fnuz"): torch.float8_e4m3fnuz,
    (5, 2, "fnuz"): torch.float8_e5m2fnuz,
    (5, 10, "ieee"): torch.float16,
}
