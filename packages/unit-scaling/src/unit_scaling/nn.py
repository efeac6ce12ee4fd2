"""Unit-scaled modules (``import unit_scaling.nn as unn``): drop-in ``torch.nn`` layers, transformer
blocks, depth containers and parameter metadata helpers."""

from ._coherence import pair_coherence
from ._depth import DepthModuleList, DepthSequential, parameter_depths, parameter_roles
from ._modules import (
    GELU,
    Conv1d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    LinearReadout,
    RMSNorm,
    SiLU,
    Softmax,
)
from ._transformer import (
    MLP,
    Attention,
    TransformerDecoder,
    TransformerLayer,
    apply_rope,
    residual_taus,
)

__all__ = [
    "GELU",
    "MLP",
    "Attention",
    "Conv1d",
    "Conv2d",
    "CrossEntropyLoss",
    "DepthModuleList",
    "DepthSequential",
    "Dropout",
    "Embedding",
    "LayerNorm",
    "Linear",
    "LinearReadout",
    "RMSNorm",
    "SiLU",
    "Softmax",
    "TransformerDecoder",
    "TransformerLayer",
    "apply_rope",
    "pair_coherence",
    "parameter_depths",
    "parameter_roles",
    "residual_taus",
]
