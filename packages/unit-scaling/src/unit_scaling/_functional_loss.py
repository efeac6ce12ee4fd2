"""Unit-scaled losses: cross-entropy and mean-squared error.

The loss *value* equals torch's; only the gradients are rescaled (a loss is the last op, so its
input gradients are cut edges and may be scaled freely; Unit Scaling §5.1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_mult, check_tensor, reject
from ._scale import scale

__all__ = ["cross_entropy", "mse_loss"]

_REDUCTIONS = ("mean", "sum", "none")


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    mult: float = 1.0,
) -> Tensor:
    """Unit-scaled ``F.cross_entropy``; the returned value equals ``F.cross_entropy(mult·input)``.

    Args:
        input: logits ``(B, V)``, ``(V,)`` or ``(B, V, d1, ...)`` (class dim 1, as torch).
        target: class indices (int64, ``input`` shape without dim 1) or class probabilities.
        ignore_index, reduction, label_smoothing: as torch.
        mult: α_loss-softmax, applied to the logits in forward only.

    Backward: each row's logit gradient (softmax − target) has RMS ≈ sqrt(V−1)/V, so it is scaled
    by V/sqrt(V−1), and the 1/B of the mean reduction is undone (B = non-ignored targets).
    """
    check_tensor("cross_entropy", "input", input, 1)
    if not isinstance(target, Tensor):
        raise TypeError(f"cross_entropy: target must be a tensor, got {type(target).__name__}.")
    m = check_mult("cross_entropy", mult)
    reject(
        "cross_entropy",
        "weight",
        weight,
        None,
        "class weights are not supported; weight the per-token losses (reduction='none').",
    )
    reject("cross_entropy", "size_average", size_average, None, "use reduction= instead.")
    reject("cross_entropy", "reduce", reduce, None, "use reduction= instead.")
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}."
        )
    vocab = input.shape[1] if input.dim() >= 2 else input.shape[0]
    if vocab < 2:
        raise ValueError(
            f"cross_entropy: need at least 2 classes, got input shape {tuple(input.shape)}."
        )
    g = vocab / math.sqrt(vocab - 1)
    bwd: float | Tensor = g
    if reduction == "mean":
        if target.is_floating_point():
            bwd = g * (input.numel() // vocab)
        else:
            count = (target != ignore_index).sum().clamp_min(1).to(torch.float32)
            bwd = count * g
    x = scale(input, m, bwd)
    return F.cross_entropy(
        x, target, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Unit-scaled ``F.mse_loss``: value equals torch's; both gradients have unit std.

    For independent unit inputs the summed loss's gradient 2(x−y) has std sqrt(8), so gradients
    are scaled by 8^-1/2 (and the 1/numel of ``mean`` is undone). Shapes must match.
    """
    check_tensor("mse_loss", "input", input)
    check_tensor("mse_loss", "target", target)
    reject("mse_loss", "size_average", size_average, None, "use reduction= instead.")
    reject("mse_loss", "reduce", reduce, None, "use reduction= instead.")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}.")
    if input.shape != target.shape:
        raise ValueError(
            f"mse_loss: input {tuple(input.shape)} and target {tuple(target.shape)} must have the "
            "same shape; broadcast explicitly with .expand_as()."
        )
    b = 8**-0.5 * (input.numel() if reduction == "mean" else 1)
    return F.mse_loss(scale(input, 1.0, b), scale(target, 1.0, b), reduction=reduction)
