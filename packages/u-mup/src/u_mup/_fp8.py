"""Simulated FP8 for the inputs of linear layers (u-μP §4.3; reference §2.6).

Forward: the activation and weight entering each ``F.linear`` are rounded to E4M3 (OCP
``float8_e4m3fn``, max 448, round-to-nearest-even, saturating); backward: the gradient arriving
at them is rounded to E5M2 (``float8_e5m2``). Scales are static (1): no amax history, no loss
scaling. Rounding uses torch's own casts, so it is bit-exact with ``tensor.to(torch.float8_*)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["FP8Sim", "quantise"]

_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}


def quantise(x: Tensor, dtype: torch.dtype) -> Tensor:
    """Round ``x`` to ``dtype`` (saturating at its max finite value) and back to ``x.dtype``."""
    m = _MAX[dtype]
    return x.clamp(-m, m).to(dtype).to(x.dtype)


@dataclass
class FP8Sim:
    """FP8 simulation switch held by a model; ``track=True`` records flush-to-zero counts.

    ``stats`` maps ``"fwd"``/``"bwd"`` to ``[flushed, nonzero]`` counts (tensors, summed lazily).
    """

    fwd: torch.dtype = torch.float8_e4m3fn
    bwd: torch.dtype = torch.float8_e5m2
    track: bool = False
    stats: dict[str, list] = field(default_factory=lambda: {"fwd": [0, 0], "bwd": [0, 0]})

    def _count(self, kind: str, x: Tensor, q: Tensor) -> None:
        if self.track:
            nz = x != 0
            s = self.stats[kind]
            s[0] = s[0] + (nz & (q == 0)).sum().item()
            s[1] = s[1] + nz.sum().item()

    def flush_fraction(self) -> dict[str, float]:
        """Fraction of nonzero values rounded to zero, forward and backward."""
        return {k: (v[0] / v[1] if v[1] else 0.0) for k, v in self.stats.items()}

    def __call__(self, x: Tensor) -> Tensor:
        return _Quant.apply(x, self)


class _Quant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, sim: FP8Sim) -> Tensor:  # type: ignore[override]
        ctx.sim = sim
        q = quantise(x, sim.fwd)
        sim._count("fwd", x, q)
        return q

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        sim: FP8Sim = ctx.sim
        q = quantise(g, sim.bwd)
        sim._count("bwd", g, q)
        return q, None
