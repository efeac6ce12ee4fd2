"""Bad input raises ValueError/TypeError saying what was received and how to fix it."""

import pytest
import torch

import unit_scaling.functional as U
from unit_scaling.constraints import Constraint, resolve_constraint


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: U.linear(torch.randn(4, 8), torch.randn(3, 5)), ValueError, "in_features 5"),
        (
            lambda: U.linear(torch.randn(4, 8), torch.randn(3, 8), constraint="mean"),
            ValueError,
            "unknown constraint 'mean'",
        ),
        (lambda: U.gelu(torch.randn(4), mult=0.0), ValueError, "mult must be > 0"),
        (lambda: U.gelu(torch.arange(4)), TypeError, "floating-point"),
        (
            lambda: U.embedding(torch.zeros(3, dtype=torch.long), torch.randn(5, 2), max_norm=1.0),
            ValueError,
            "max_norm=1.0 is not supported",
        ),
        (
            lambda: U.cross_entropy(
                torch.randn(4, 5), torch.zeros(4, dtype=torch.long), weight=torch.ones(5)
            ),
            ValueError,
            "weight",
        ),
        (
            lambda: U.cross_entropy(
                torch.randn(4, 5), torch.zeros(4, dtype=torch.long), reduction="avg"
            ),
            ValueError,
            "reduction",
        ),
        (lambda: U.matmul(torch.randn(4, 3), torch.randn(4, 3)), ValueError, "inner dims"),
        (lambda: U.mse_loss(torch.randn(4), torch.randn(5)), ValueError, "expand_as"),
        (lambda: U.silu(torch.randn(3), inplace=True), ValueError, "inplace"),
        (lambda: U.scale(torch.randn(3), torch.ones(2)), ValueError, "0-d tensor"),
        (lambda: U.residual_split(torch.randn(3), tau=-1.0), ValueError, "tau"),
    ],
)
def test_bad_input_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_constraint_enum_and_names_agree():
    for c in Constraint:
        if c.value in ("to_left_grad_scale", "to_right_grad_scale"):
            assert resolve_constraint(c.value)(1.0, 2.0, 3.0) == c(1.0, 2.0, 3.0)
        elif c.value == "to_grad_input_scale":
            assert c(1.0, 2.0) == 2.0
        else:
            assert resolve_constraint(c.value)(1.0, 4.0) == c(1.0, 4.0)
    assert Constraint.GMEAN(1.0, 4.0) == pytest.approx(2.0)
    assert Constraint.HMEAN(1.0, 4.0) == pytest.approx(1.6)
