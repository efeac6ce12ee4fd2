"""Scale constraints (Unit Scaling §5.1): tie forward and backward scales on non-cut edges."""

from ._constraints import (
    Constraint,
    ConstraintLike,
    amean,
    apply_constraint,
    gmean,
    hmean,
    resolve_constraint,
    to_grad_input_scale,
    to_left_grad_scale,
    to_output_scale,
    to_right_grad_scale,
)

__all__ = [
    "Constraint",
    "ConstraintLike",
    "amean",
    "apply_constraint",
    "gmean",
    "hmean",
    "resolve_constraint",
    "to_grad_input_scale",
    "to_left_grad_scale",
    "to_output_scale",
    "to_right_grad_scale",
]
