"""Unit-scaled linear-algebra ops: linear, linear_readout, matmul, embedding, conv1d, conv2d.

Scale rules (Unit Scaling, Blake et al. 2023, §5 and Table A.2; u-μP, Blake et al. 2024, §4):
with fan-in k, fan-out n and B rows, ``linear`` uses forward scale k^-1/2, input-gradient scale
n^-1/2 and weight/bias-gradient scale B^-1/2. All scale multiplies are placed on weight-sized
tensors (or vanish when the constraint ties them), so they cost nothing next to the matmul.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_tensor, reject
from ._constraints import ConstraintLike, apply_constraint
from ._scale import scale, scale_bwd

__all__ = ["conv1d", "conv2d", "embedding", "linear", "linear_readout", "matmul"]


def _scaled_linear(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    out_scale: float,
    constraint: ConstraintLike,
    op: str,
    input_scale: float = 1.0,
) -> Tensor:
    check_tensor(op, "input", input, 1)
    check_tensor(op, "weight", weight, 2)
    if weight.dim() != 2:
        raise ValueError(
            f"unit_scaling.functional.{op}: weight must be 2-D (out_features, in_features), got "
            f"shape {tuple(weight.shape)}."
        )
    n, k = weight.shape
    if input.shape[-1] != k:
        raise ValueError(
            f"unit_scaling.functional.{op}: input's last dim {input.shape[-1]} does not match "
            f"weight's in_features {k} (weight shape {tuple(weight.shape)}); transpose the weight "
            f"or reshape the input."
        )
    rows = max(input.numel() // max(k, 1), 1)
    alpha, beta_x = apply_constraint(constraint, out_scale, n**-0.5)
    beta_w = rows**-0.5
    # y = x (α W)^T: grad_x = α g W, so the input needs an extra β_x/α; grad_W gets β_W directly.
    # ``input_scale`` c: the input arrives divided by c (e.g. attention output whose scale was
    # not applied); (x/c)(c α W)^T with weight-gradient scale c β_W gives exactly the same output
    # and gradients, and c rides on the weight's multiply instead of an activation-sized kernel.
    x = scale_bwd(input, beta_x / alpha)
    w = scale(weight, alpha * input_scale, beta_w * input_scale)
    b = scale_bwd(bias, beta_w) if bias is not None else None
    return F.linear(x, w, b)


def linear(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    constraint: ConstraintLike = "to_output_scale",
) -> Tensor:
    """Unit-scaled ``F.linear``: ``y = k^-1/2 · x Wᵀ + b``.

    Args:
        input: ``(*, k)`` floating tensor.
        weight: ``(n, k)``, initialised N(0, 1).
        bias: optional ``(n,)``, initialised 0; added unscaled.
        constraint: ties the output scale k^-1/2 and the input-gradient scale n^-1/2
            (default ``"to_output_scale"``: both k^-1/2, a correct gradient). ``None`` makes the
            input gradient unit-scaled too (safe only after the last residual add).

    Returns:
        ``(*, n)``. Weight and bias gradients are scaled by B^-1/2 (B = rows of ``input``).
    """
    check_tensor("linear", "weight", weight, 2)
    return _scaled_linear(input, weight, bias, weight.shape[-1] ** -0.5, constraint, "linear")


def linear_readout(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    constraint: ConstraintLike = None,
) -> Tensor:
    """Unit-scaled readout (final projection to logits): ``y = k^-1 · x Wᵀ + b``.

    The forward scale is the μP output multiplier 1/fan_in (u-μP Table 2), so the output std is
    k^-1/2 by design; the input gradient (n^-1/2) and weight gradient (B^-1/2) stay unit-scaled.
    Unconstrained by default: nothing joins the graph after the readout.

    Shapes: input ``(*, k)``, weight ``(n, k)``, bias ``(n,)`` → ``(*, n)``.
    """
    check_tensor("linear_readout", "weight", weight, 2)
    return _scaled_linear(input, weight, bias, 1.0 / weight.shape[-1], constraint, "linear_readout")


def matmul(
    left: Tensor, right: Tensor, *, constraint: ConstraintLike = "to_output_scale"
) -> Tensor:
    """Unit-scaled ``torch.matmul`` of ``left (*, m, k)`` and ``right (*, k, n)`` (broadcast batch).

    Scales: output k^-1/2, left gradient (n·e_l)^-1/2, right gradient (m·e_r)^-1/2, where e is
    the broadcast expansion of that operand's batch dims. Default constraint ``to_output_scale``.
    """
    check_tensor("matmul", "left", left, 2)
    check_tensor("matmul", "right", right, 2)
    m, k = left.shape[-2:]
    k2, n = right.shape[-2:]
    if k != k2:
        raise ValueError(
            f"unit_scaling.functional.matmul: inner dims differ: left {tuple(left.shape)} and "
            f"right {tuple(right.shape)}; left must be (*, m, k) and right (*, k, n)."
        )
    batch = torch.broadcast_shapes(left.shape[:-2], right.shape[:-2])
    nb = math.prod(batch)
    e_l = nb // max(math.prod(left.shape[:-2]), 1)
    e_r = nb // max(math.prod(right.shape[:-2]), 1)
    alpha, beta_l, beta_r = apply_constraint(
        constraint, k**-0.5, (n * e_l) ** -0.5, (m * e_r) ** -0.5
    )
    if alpha == beta_l == beta_r:  # ordinary product: scale the smaller operand
        if left.numel() <= right.numel():
            return torch.matmul(left * alpha, right)
        return torch.matmul(left, right * alpha)
    return torch.matmul(scale(left, alpha, beta_l), scale_bwd(right, beta_r / alpha))


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Unit-scaled ``F.embedding``: forward unchanged; weight gradient × sqrt(V / B).

    Only about B/V of the V rows receive gradient per step, so the factor restores unit RMS of the
    weight gradient (Unit Scaling §5). Shapes: input ``(*)`` int64, weight ``(V, d)`` → ``(*, d)``.
    """
    if not isinstance(input, Tensor) or input.is_floating_point():
        raise TypeError(
            "unit_scaling.functional.embedding: input must be an integer tensor of token ids, got "
            f"{getattr(input, 'dtype', type(input).__name__)}; convert it with .long()."
        )
    check_tensor("embedding", "weight", weight, 2)
    reject("embedding", "max_norm", max_norm, None, "renormalise the weight yourself.")
    reject("embedding", "scale_grad_by_freq", scale_grad_by_freq, False, "drop the argument.")
    reject("embedding", "sparse", sparse, False, "use dense gradients.")
    vocab = weight.shape[0]
    tokens = max(input.numel(), 1)
    w = scale_bwd(weight, (vocab / tokens) ** 0.5)
    return F.embedding(input, w, padding_idx)


def _pair(v: int | tuple[int, ...], n: int, name: str) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * n
    if len(v) != n:
        raise ValueError(f"{name} must be an int or a {n}-tuple, got {v!r}.")
    return tuple(v)


def _conv(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride,  # type: ignore[no-untyped-def]
    padding,  # type: ignore[no-untyped-def]
    dilation,  # type: ignore[no-untyped-def]
    groups: int,
    constraint: ConstraintLike,
    nd: int,
) -> Tensor:
    op = f"conv{nd}d"
    check_tensor(op, "input", input, nd + 2)
    check_tensor(op, "weight", weight, nd + 2)
    stride_t = _pair(stride, nd, "stride")
    dil = _pair(dilation, nd, "dilation")
    ks = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{op}: padding must be 'same', 'valid' or ints, got {padding!r}.")
        pad = tuple(d * (k - 1) // 2 for d, k in zip(dil, ks)) if padding == "same" else (0,) * nd
    else:
        pad = _pair(padding, nd, "padding")
    spatial = input.shape[2:]
    if padding == "same":
        out_sp = tuple(spatial)
    else:
        out_sp = tuple(
            (L + 2 * p - d * (k - 1) - 1) // s + 1
            for L, p, d, k, s in zip(spatial, pad, dil, ks, stride_t)
        )
    c_out = weight.shape[0]
    fan_in = weight.shape[1] * math.prod(ks)
    alpha, beta_x = apply_constraint(
        constraint,
        fan_in**-0.5,
        (c_out * math.prod(ks) / (groups * math.prod(stride_t))) ** -0.5,
    )
    beta_w = max(input.shape[0] * math.prod(out_sp), 1) ** -0.5
    x = scale_bwd(input, beta_x / alpha)
    w = scale(weight, alpha, beta_w)
    b = scale_bwd(bias, beta_w) if bias is not None else None
    fn = F.conv1d if nd == 1 else F.conv2d
    return fn(x, w, b, stride, padding, dilation, groups)


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    *,
    constraint: ConstraintLike = "to_output_scale",
) -> Tensor:
    """Unit-scaled ``F.conv1d`` on ``(N, C_in, L)`` with weight ``(C_out, C_in/groups, K)``.

    Scales: output (C_in/groups·K)^-1/2, input gradient (C_out·K/(groups·stride))^-1/2, weight and
    bias gradients (N·L_out)^-1/2 (Unit Scaling §5 applied to the unfolded matmul).
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, constraint, 1)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    constraint: ConstraintLike = "to_output_scale",
) -> Tensor:
    """Unit-scaled ``F.conv2d`` on ``(N, C_in, H, W)``, weight ``(C_out, C_in/groups, kh, kw)``.

    Scales as :func:`conv1d` with K = kh·kw, stride = sh·sw and L_out = H_out·W_out.
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, constraint, 2)
