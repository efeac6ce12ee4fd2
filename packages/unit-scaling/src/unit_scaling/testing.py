"""Test helpers: backward with a unit-normal gradient, and scale assertions."""

from __future__ import annotations

import torch
from torch import Tensor

from ._reference import SPTransformerDecoder, SPTransformerLayer

__all__ = [
    "SPTransformerDecoder",
    "SPTransformerLayer",
    "assert_scale",
    "assert_unit_scaled",
    "rms",
    "unit_backward",
]


def unit_backward(y: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Backpropagate a N(0, 1) gradient (same shape/dtype as ``y``) through ``y``; returns it.

    This is the incoming gradient of the unit-scaling analysis (Unit Scaling §4): with it, each
    input gradient's std measures the op's backward scale directly.
    """
    if not isinstance(y, Tensor) or not y.requires_grad:
        raise ValueError(
            "unit_backward needs a tensor that requires grad (the output of a differentiable "
            "computation); make sure an input has requires_grad=True."
        )
    g = torch.randn(y.shape, dtype=y.dtype, device=y.device, generator=generator)
    y.backward(g)
    return g


def rms(t: Tensor) -> float:
    """Root-mean-square of ``t`` as a Python float (computed in fp32)."""
    return float(t.detach().float().pow(2).mean().sqrt())


def assert_scale(
    t: Tensor | None, target: float = 1.0, rel: float = 0.1, stat: str = "std", name: str = ""
) -> float:
    """Assert that ``stat(t)`` (``"std"`` or ``"rms"``) is within ``target · (1 ± rel)``.

    Returns the measured value. Raises ``AssertionError`` naming the tensor otherwise.
    """
    if t is None:
        raise AssertionError(f"{name or 'tensor'} is None (no gradient reached it?)")
    if stat not in ("std", "rms"):
        raise ValueError(f"stat must be 'std' or 'rms', got {stat!r}.")
    v = float(t.detach().float().std()) if stat == "std" else rms(t)
    if not abs(v - target) <= rel * abs(target):
        raise AssertionError(
            f"{name or 'tensor'}: {stat} = {v:.4g}, expected {target:.4g} ± {rel * 100:.0f}%"
        )
    return v


def assert_unit_scaled(*tensors: Tensor | None, rel: float = 0.1, stat: str = "std") -> None:
    """Assert that every tensor has ``stat`` 1 ± ``rel``."""
    for i, t in enumerate(tensors):
        assert_scale(t, 1.0, rel, stat, name=f"tensor {i}")
