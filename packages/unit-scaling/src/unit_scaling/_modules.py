"""Unit-scaled drop-in replacements for ``torch.nn`` layers.

Each class subclasses its torch counterpart (so ``isinstance(m, nn.Linear)`` still holds and
state dicts are interchangeable), initialises weights N(0, 1), biases 0 and norm gains 1, and
calls the op of :mod:`unit_scaling.functional` in ``forward``. Each parameter's role
(``"weight"``, ``"output"``, ``"embedding"``, ``"bias"``, ``"norm"``) is available from
:func:`unit_scaling.nn.parameter_roles` for parametrization rules such as u-μP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor, nn

from . import functional as U
from ._constraints import ConstraintLike
from ._functional_linear import _scaled_linear

__all__ = [
    "GELU",
    "Conv1d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "LayerNorm",
    "Linear",
    "LinearReadout",
    "RMSNorm",
    "SiLU",
    "Softmax",
]


class _Roles:
    """Mixin: ``param_roles`` maps a local parameter name to its role."""

    param_roles: ClassVar[dict[str, str]] = {}


class Linear(nn.Linear, _Roles):
    """Unit-scaled :class:`torch.nn.Linear`: ``y = x Wᵀ / sqrt(in_features) + b``.

    Args: as torch (``bias=True`` by default), plus ``constraint`` (default ``to_output_scale``).
    Weight ``(out, in)`` ~ N(0, 1), bias zeros. Input ``(*, in)`` → ``(*, out)``.
    """

    param_roles: ClassVar[dict[str, str]] = {"weight": "weight", "bias": "bias"}

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        constraint: ConstraintLike = "to_output_scale",
    ) -> None:
        self.constraint = constraint
        super().__init__(in_features, out_features, bias, device, dtype)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: Tensor, _input_scale: float = 1.0) -> Tensor:
        if _input_scale != 1.0:  # the input is unscaled by this factor: fold it into the weight
            return _scaled_linear(
                input, self.weight, self.bias, self.in_features**-0.5, self.constraint, "linear",
                _input_scale,
            )  # fmt: skip
        return U.linear(input, self.weight, self.bias, constraint=self.constraint)


class LinearReadout(Linear):
    """Unit-scaled final projection: ``y = x Wᵀ / in_features + b`` (μP output multiplier).

    Unconstrained by default (nothing rejoins after the readout). Output std is in_features^-1/2
    at initialisation, by design.
    """

    param_roles: ClassVar[dict[str, str]] = {"weight": "output", "bias": "bias"}

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        constraint: ConstraintLike = None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device, dtype, constraint=constraint)

    def forward(self, input: Tensor) -> Tensor:
        return U.linear_readout(input, self.weight, self.bias, constraint=self.constraint)


class Embedding(nn.Embedding, _Roles):
    """Unit-scaled :class:`torch.nn.Embedding` (weight ~ N(0, 1); gradient × sqrt(V/B)).

    ``max_norm``, ``scale_grad_by_freq`` and ``sparse`` are not supported (``ValueError``).
    """

    param_roles: ClassVar[dict[str, str]] = {"weight": "embedding"}

    def forward(self, input: Tensor) -> Tensor:
        return U.embedding(
            input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
            self.scale_grad_by_freq, self.sparse,
        )  # fmt: skip


class LayerNorm(nn.LayerNorm, _Roles):
    """Unit-scaled :class:`torch.nn.LayerNorm` (gain 1, bias 0; their gradients × B^-1/2)."""

    param_roles: ClassVar[dict[str, str]] = {"weight": "norm", "bias": "bias"}

    def forward(self, input: Tensor) -> Tensor:
        return U.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.RMSNorm, _Roles):
    """Unit-scaled :class:`torch.nn.RMSNorm` (gain 1; its gradient × B^-1/2)."""

    param_roles: ClassVar[dict[str, str]] = {"weight": "norm"}

    def forward(self, input: Tensor) -> Tensor:
        return U.rms_norm(input, self.normalized_shape, self.weight, self.eps)


class GELU(nn.GELU):
    """Unit-scaled GELU ``gelu(mult·x)/mult`` (``mult`` = u-μP α_ffn-act)."""

    def __init__(
        self,
        approximate: str = "none",
        *,
        mult: float = 1.0,
        constraint: ConstraintLike = "to_output_scale",
    ) -> None:
        super().__init__(approximate)
        self.mult, self.constraint = mult, constraint

    def forward(self, input: Tensor) -> Tensor:
        return U.gelu(input, self.approximate, mult=self.mult, constraint=self.constraint)


class SiLU(nn.SiLU):
    """Unit-scaled SiLU ``x·sigmoid(mult·x)``."""

    def __init__(
        self, *, mult: float = 1.0, constraint: ConstraintLike = "to_output_scale"
    ) -> None:
        super().__init__()
        self.mult, self.constraint = mult, constraint

    def forward(self, input: Tensor) -> Tensor:
        return U.silu(input, mult=self.mult, constraint=self.constraint)


class Softmax(nn.Softmax):
    """Unit-scaled softmax along ``dim`` (unit RMS output)."""

    def __init__(
        self,
        dim: int = -1,
        *,
        mult: float = 1.0,
        constraint: ConstraintLike = "to_output_scale",
    ) -> None:
        super().__init__(dim)
        self.mult, self.constraint = mult, constraint

    def forward(self, input: Tensor) -> Tensor:
        return U.softmax(input, self.dim, mult=self.mult, constraint=self.constraint)


class Dropout(nn.Dropout):
    """Unit-scaled dropout (variance-preserving: × sqrt(1-p) after torch's 1/(1-p))."""

    def forward(self, input: Tensor) -> Tensor:
        return U.dropout(input, self.p, self.training, self.inplace)


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """Unit-scaled cross-entropy: the value equals torch's; logit gradients are unit-scaled."""

    def __init__(
        self,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        mult: float = 1.0,
    ) -> None:
        if weight is not None:
            raise ValueError(
                "CrossEntropyLoss: class weights are not supported; weight per-token losses "
                "computed with reduction='none' instead."
            )
        super().__init__(None, None, ignore_index, None, reduction, label_smoothing)
        self.mult = mult

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return U.cross_entropy(
            input, target, ignore_index=self.ignore_index, reduction=self.reduction,
            label_smoothing=self.label_smoothing, mult=self.mult,
        )  # fmt: skip


def _conv_init(module: nn.Module) -> None:
    nn.init.normal_(module.weight)  # type: ignore[arg-type]
    if module.bias is not None:  # type: ignore[union-attr]
        nn.init.zeros_(module.bias)  # type: ignore[arg-type]


def _check_padding_mode(mode: str) -> None:
    if mode != "zeros":
        raise ValueError(
            f"unit-scaled convolutions support padding_mode='zeros' only, got {mode!r}; pad the "
            "input with torch.nn.functional.pad first."
        )


class _UnitConv(_Roles):
    """Shared body of the unit-scaled convolutions; ``_conv`` is the functional op to call."""

    param_roles: ClassVar[dict[str, str]] = {"weight": "weight", "bias": "bias"}
    _conv: ClassVar[Callable[..., Tensor]]

    def __init__(self, *args: Any, constraint: ConstraintLike = "to_output_scale", **kw: Any):
        super().__init__(*args, **kw)
        _check_padding_mode(self.padding_mode)
        self.constraint = constraint

    def reset_parameters(self) -> None:
        _conv_init(self)

    def forward(self, input: Tensor) -> Tensor:
        return self._conv(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
            constraint=self.constraint,
        )  # fmt: skip


class Conv1d(_UnitConv, nn.Conv1d):
    """Unit-scaled :class:`torch.nn.Conv1d` (weight N(0, 1), bias 0; ``padding_mode='zeros'``)."""

    _conv = staticmethod(U.conv1d)


class Conv2d(_UnitConv, nn.Conv2d):
    """Unit-scaled :class:`torch.nn.Conv2d` (weight N(0, 1), bias 0; ``padding_mode='zeros'``)."""

    _conv = staticmethod(U.conv2d)
