"""Argument checks shared by the functional ops: clear errors for unsupported torch arguments."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def reject(op: str, name: str, value: Any, default: Any, fix: str) -> None:
    """Raise ``ValueError`` if an unsupported torch argument differs from its default."""
    if value is not default and value != default:
        raise ValueError(
            f"unit_scaling.functional.{op}: argument {name}={value!r} is not supported "
            f"(only {name}={default!r}). Fix: {fix}"
        )


def check_tensor(op: str, name: str, t: Any, min_dim: int = 0, floating: bool = True) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``t`` is a (float) tensor with >= min_dim dims."""
    if not isinstance(t, Tensor):
        raise TypeError(
            f"unit_scaling.functional.{op}: {name} must be a torch.Tensor, got {type(t).__name__}."
        )
    if floating and not t.is_floating_point():
        raise TypeError(
            f"unit_scaling.functional.{op}: {name} must be a floating-point tensor, got dtype "
            f"{t.dtype}; convert it with .float() (or .to(torch.bfloat16))."
        )
    if t.dim() < min_dim:
        raise ValueError(
            f"unit_scaling.functional.{op}: {name} must have at least {min_dim} dimensions, got "
            f"shape {tuple(t.shape)}; add the missing dims (e.g. .unsqueeze(0))."
        )


def check_mult(op: str, mult: float) -> float:
    """``mult`` must be a positive Python number (a u-μP α hyperparameter)."""
    if isinstance(mult, bool) or not isinstance(mult, (int, float)):
        raise TypeError(
            f"unit_scaling.functional.{op}: mult must be a Python float, got "
            f"{type(mult).__name__}; pass e.g. mult=1.0."
        )
    if not mult > 0:
        raise ValueError(
            f"unit_scaling.functional.{op}: mult must be > 0, got {mult!r}; use a positive "
            f"multiplier such as 1.0."
        )
    return float(mult)
