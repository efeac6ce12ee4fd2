"""Scaling primitives: multiply a tensor by one factor in forward and another in backward.

Unit Scaling (Blake, Orr & Luschi, ICML 2023, §4) gives each op a forward scale α and separate
backward scales β. The two primitives here are the only places where such independent scales
are applied; every op in :mod:`unit_scaling.functional` is built from them and from plain torch.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Scale", "scale", "scale_bwd", "scale_fwd"]

Scale = float | int | Tensor
"""A scale: a Python number (folded into the graph as a constant) or a 0-d fp32 tensor."""


class _ScaleConst(torch.autograd.Function):
    """``y = fwd * x`` in forward, ``grad_x = bwd * grad_y`` in backward (Python-float scales)."""

    # ctx-in-forward style on purpose: a separate ``setup_context`` makes every ``apply`` bind
    # the forward's signature with ``inspect`` (~0.1 ms of host time per eager call)
    @staticmethod
    def forward(ctx, x: Tensor, fwd: float, bwd: float) -> Tensor:  # type: ignore[no-untyped-def,override]
        ctx.bwd = bwd
        return x * fwd if fwd != 1.0 else x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def,override]
        bwd = ctx.bwd
        return (grad * bwd if bwd != 1.0 else grad), None, None


class _ScaleTensor(torch.autograd.Function):
    """As :class:`_ScaleConst`, but either scale may be a 0-d tensor (applied in fp32).

    A Python-float scale of exactly 1 is skipped, so e.g. a backward-only tensor scale adds no
    forward kernel.
    """

    @staticmethod
    def forward(ctx, x: Tensor, fwd: Tensor | float, bwd: Tensor | float) -> Tensor:  # type: ignore[no-untyped-def,override]
        ctx.bwd_const = None if isinstance(bwd, Tensor) else bwd
        ctx.save_for_backward(bwd if isinstance(bwd, Tensor) else None)
        return _mul(x, fwd)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def,override]
        (bwd,) = ctx.saved_tensors
        return _mul(grad, ctx.bwd_const if bwd is None else bwd), None, None


def _mul(x: Tensor, s: Tensor | float) -> Tensor:
    if isinstance(s, Tensor):
        return (x * s).to(x.dtype)
    return x * s if s != 1.0 else x.view_as(x)


def _check_scale(s: object, name: str) -> None:
    if isinstance(s, Tensor):
        if s.dim() != 0:
            raise ValueError(
                f"{name} must be a Python number or a 0-d tensor, got a tensor of shape "
                f"{tuple(s.shape)}; pass a scalar (e.g. s.reshape(()) or float(s))."
            )
        if not s.is_floating_point():
            raise TypeError(
                f"{name} tensor must be floating point, got dtype {s.dtype}; convert it with "
                f".to(torch.float32)."
            )
    elif not isinstance(s, (int, float)) or isinstance(s, bool):
        raise TypeError(
            f"{name} must be a Python float or a 0-d tensor, got {type(s).__name__}; "
            f"pass e.g. {name}=0.5."
        )


def _as_fp32(s: Scale, like: Tensor) -> Tensor | float:
    # A Python number stays a Python number: building a device tensor from it with
    # ``torch.tensor(v, device="cuda")`` is a blocking host-to-device copy (a stream
    # synchronisation every call), which stalls the launch queue of a training step.
    if isinstance(s, Tensor):
        return s.to(device=like.device, dtype=torch.float32)
    return float(s)


def scale(x: Tensor, fwd: Scale = 1.0, bwd: Scale = 1.0) -> Tensor:
    """Scale ``x`` by ``fwd`` in the forward pass and its gradient by ``bwd`` in the backward pass.

    Args:
        x: any floating-point tensor (any shape, fp32/bf16/fp16).
        fwd: forward scale α (Python number or 0-d tensor).
        bwd: backward scale β applied to the incoming gradient.

    Returns:
        A tensor of the same shape and dtype as ``x`` equal to ``fwd * x``.

    Python-number scales are compile-time constants (``torch.compile(fullgraph=True)`` traces them
    with no graph break and fuses the multiply into neighbouring kernels); a scale of exactly 1
    costs nothing. Tensor scales are applied in fp32 and the result is cast back to ``x.dtype``, so
    the scale itself is never rounded to bf16/fp16 (Unit Scaling, §4, "scaled ops").
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"scale expects a torch.Tensor, got {type(x).__name__}.")
    _check_scale(fwd, "fwd")
    _check_scale(bwd, "bwd")
    if isinstance(fwd, Tensor) or isinstance(bwd, Tensor):
        if fwd is bwd:  # an ordinary multiply by a constant (the scale carries no gradient)
            return (x * fwd.detach().to(torch.float32)).to(x.dtype)  # type: ignore[union-attr]
        return _ScaleTensor.apply(x, _as_fp32(fwd, x), _as_fp32(bwd, x))
    fwd, bwd = float(fwd), float(bwd)
    if fwd == 1.0 and bwd == 1.0:
        return x
    if bwd == fwd:  # an ordinary multiply: its gradient is already bwd * grad
        return x * fwd
    return _ScaleConst.apply(x, fwd, bwd)


def scale_fwd(x: Tensor, s: Scale) -> Tensor:
    """Multiply ``x`` by ``s`` in forward only; the gradient passes through unchanged."""
    return scale(x, s, 1.0)


def scale_bwd(x: Tensor, s: Scale) -> Tensor:
    """Identity in forward; multiply the gradient of ``x`` by ``s`` in backward."""
    return scale(x, 1.0, s)
