"""Unit-scaled functional ops, drop-in mirrors of ``torch.nn.functional`` (``import ... as U``).

Every op takes the same positional/keyword arguments as its torch counterpart plus keyword-only
scaling arguments: ``mult`` (a u-μP α multiplier, where the op has one) and ``constraint``
(how forward/backward scales are tied, see :mod:`unit_scaling.constraints`). Unsupported torch
arguments raise ``ValueError`` naming the argument and the fix.
"""

from ._functional_attention import scaled_dot_product_attention
from ._functional_linear import conv1d, conv2d, embedding, linear, linear_readout, matmul
from ._functional_loss import cross_entropy, mse_loss
from ._functional_pointwise import (
    add,
    dropout,
    gelu,
    layer_norm,
    residual_add,
    residual_apply,
    residual_split,
    rms_norm,
    silu,
    silu_glu,
    softmax,
)
from ._scale import scale, scale_bwd, scale_fwd

__all__ = [
    "add",
    "conv1d",
    "conv2d",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "layer_norm",
    "linear",
    "linear_readout",
    "matmul",
    "mse_loss",
    "residual_add",
    "residual_apply",
    "residual_split",
    "rms_norm",
    "scale",
    "scale_bwd",
    "scale_fwd",
    "scaled_dot_product_attention",
    "silu",
    "silu_glu",
    "softmax",
]
