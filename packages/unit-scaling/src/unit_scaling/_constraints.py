"""Scale constraints: how an op's forward and backward scales are tied on non-cut edges.

Unit Scaling (Blake, Orr & Luschi, ICML 2023, §5.1): the scales of tensors on *cut* edges (weights,
and anything whose gradient flows only into parameters) may be chosen freely, but on *non-cut*
edges (activations whose paths later rejoin) the forward scale and the backward scales of the
activation inputs must be equal, otherwise the computed gradient is not the gradient of the
computed function. A constraint maps the ideal scales ``(output_scale, *grad_input_scales)`` of
the tied tensors to the single scale they all use. ``None`` leaves every scale free.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

__all__ = [
    "Constraint",
    "ConstraintLike",
    "amean",
    "gmean",
    "hmean",
    "resolve_constraint",
    "to_grad_input_scale",
    "to_left_grad_scale",
    "to_output_scale",
    "to_right_grad_scale",
]


def gmean(output_scale: float, *grad_input_scales: float) -> float:
    """Geometric mean of all tied scales (the 2023 paper's compromise)."""
    scales = (output_scale, *grad_input_scales)
    return math.prod(scales) ** (1.0 / len(scales))


def hmean(output_scale: float, *grad_input_scales: float) -> float:
    """Harmonic mean of all tied scales (Glorot-like)."""
    scales = (output_scale, *grad_input_scales)
    return len(scales) / sum(1.0 / s for s in scales)


def amean(output_scale: float, *grad_input_scales: float) -> float:
    """Arithmetic mean of all tied scales."""
    scales = (output_scale, *grad_input_scales)
    return sum(scales) / len(scales)


def to_output_scale(output_scale: float, *grad_input_scales: float) -> float:
    """Use the output's scale everywhere: the output is unit-scaled, input grads may not be.

    This is the default for ops on the residual path (u-μP, Blake et al. 2024, Appendix H).
    """
    return output_scale


def to_grad_input_scale(output_scale: float, *grad_input_scales: float) -> float:
    """Use the (single) input-gradient scale everywhere: the input gradient is unit-scaled."""
    if len(grad_input_scales) != 1:
        raise ValueError(
            f"to_grad_input_scale needs exactly one tied input gradient, got "
            f"{len(grad_input_scales)}; use to_left_grad_scale or to_right_grad_scale instead."
        )
    return grad_input_scales[0]


def to_left_grad_scale(output_scale: float, *grad_input_scales: float) -> float:
    """Use the left (first) input's gradient scale everywhere."""
    if len(grad_input_scales) != 2:
        raise ValueError(
            f"to_left_grad_scale needs two tied input gradients, got {len(grad_input_scales)}; "
            f"use to_grad_input_scale for single-input ops."
        )
    return grad_input_scales[0]


def to_right_grad_scale(output_scale: float, *grad_input_scales: float) -> float:
    """Use the right (second) input's gradient scale everywhere."""
    if len(grad_input_scales) != 2:
        raise ValueError(
            f"to_right_grad_scale needs two tied input gradients, got {len(grad_input_scales)}; "
            f"use to_grad_input_scale for single-input ops."
        )
    return grad_input_scales[1]


class Constraint(str, enum.Enum):
    """Named constraints; each member is also accepted as its string value (e.g. ``"gmean"``)."""

    GMEAN = "gmean"
    HMEAN = "hmean"
    AMEAN = "amean"
    TO_OUTPUT_SCALE = "to_output_scale"
    TO_GRAD_INPUT_SCALE = "to_grad_input_scale"
    TO_LEFT_GRAD_SCALE = "to_left_grad_scale"
    TO_RIGHT_GRAD_SCALE = "to_right_grad_scale"

    def __call__(self, output_scale: float, *grad_input_scales: float) -> float:
        return _BY_NAME[self.value](output_scale, *grad_input_scales)


_BY_NAME: dict[str, Callable[..., float]] = {
    "gmean": gmean,
    "hmean": hmean,
    "amean": amean,
    "to_output_scale": to_output_scale,
    "to_grad_input_scale": to_grad_input_scale,
    "to_left_grad_scale": to_left_grad_scale,
    "to_right_grad_scale": to_right_grad_scale,
}

ConstraintLike = Constraint | str | Callable[..., float] | None


def resolve_constraint(constraint: ConstraintLike) -> Callable[..., float] | None:
    """Turn a :class:`Constraint`, its name, a callable or ``None`` into a callable (or ``None``).

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if constraint is None:
        return None
    if isinstance(constraint, Constraint):
        return _BY_NAME[constraint.value]
    if isinstance(constraint, str):
        try:
            return _BY_NAME[constraint]
        except KeyError:
            raise ValueError(
                f"unknown constraint {constraint!r}; expected one of {sorted(_BY_NAME)} or None "
                f"(unconstrained)."
            ) from None
    if callable(constraint):
        return constraint
    raise TypeError(
        f"constraint must be a Constraint, a name such as 'to_output_scale', a callable or None, "
        f"got {type(constraint).__name__}."
    )


def apply_constraint(
    constraint: ConstraintLike, output_scale: float, *grad_input_scales: float
) -> tuple[float, ...]:
    """Return ``(output_scale, *grad_input_scales)`` after tying them with ``constraint``."""
    fn = resolve_constraint(constraint)
    if fn is None:
        return (output_scale, *grad_input_scales)
    s = fn(output_scale, *grad_input_scales)
    return (s,) * (1 + len(grad_input_scales))
