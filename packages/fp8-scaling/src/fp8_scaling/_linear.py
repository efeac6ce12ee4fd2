"""``Float8Linear``: a drop-in ``nn.Linear`` whose three GEMMs run in FP8."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._linear_fn import CAST_BACKENDS, float8_linear, hardware_fp8_supported, warm_capabilities
from ._recipes import ConstantScaling, DelayedScaling, JustInTimeScaling
from ._roofline import predict_speedup

__all__ = ["Float8Linear"]

_RECIPES = (JustInTimeScaling, DelayedScaling, ConstantScaling)
try:
    torch.is_autocast_enabled("cpu")
    _AUTOCAST_TAKES_DEVICE = hasattr(torch, "get_autocast_dtype")
except TypeError:  # pragma: no cover - torch < 2.4
    _AUTOCAST_TAKES_DEVICE = False


class Float8Linear(nn.Linear):
    """``nn.Linear`` with FP8 output, grad-input and grad-weight GEMMs (Perez et al. 2023, §3).

    Input (..., in_features) of any floating dtype; output (..., out_features) in the input's
    dtype. Parameters are kept in their own precision; only the GEMM operands are cast, with
    per-tensor scales chosen by ``recipe``. On CUDA GPUs with FP8 tensor cores (compute capability
    >= 8.9) the GEMMs are ``torch._scaled_mm`` calls and the casts fused Triton kernels; elsewhere
    (and for dimensions that are not multiples of 16) an exact emulation runs the same function.

    Scale state (the amax history of :class:`DelayedScaling`, rows input/weight/grad) lives in the
    buffer ``fp8_amax_history`` so ``state_dict`` and resuming work. The non-persistent buffer
    ``fp8_scale_guess`` (3,) holds the last JIT scales for the one-pass cast (``"spec"``).

    Args:
        in_features / out_features / bias / device / dtype: as ``nn.Linear``.
        recipe: a :class:`JustInTimeScaling` (default), :class:`DelayedScaling` or
            :class:`ConstantScaling`.
        auto_filter: on an FP8-capable GPU, run the plain high-precision GEMMs for input shapes
            where the roofline in :func:`fp8_scaling.predict_speedup` says FP8 would be slower.
        name: layer name used in error messages and telemetry.
        check_finite: raise ``ValueError`` naming the layer when an input holds inf/NaN (costs a
            host sync per call). By default non-finite values propagate as NaN instead.
        cast_backend: how the GPU fast path casts: ``"auto"`` (default: JIT bf16/fp16 tensors
            of at least 2**25 elements take the one-pass cast that reuses the previous step's
            scale, smaller layers the pair kernels; otherwise, when compiling, our Triton
            kernels for JIT tensors of at least 2**25 elements and plain torch ops that inductor
            fuses for the rest; fused Triton kernels in eager mode), ``"inductor"``,
            ``"triton"``, ``"pair"`` or ``"spec"`` (see :func:`fp8_scaling.float8_linear`).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        recipe: JustInTimeScaling | DelayedScaling | ConstantScaling | None = None,
        auto_filter: bool = False,
        name: str = "",
        check_finite: bool = False,
        cast_backend: str = "auto",
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        recipe = recipe if recipe is not None else JustInTimeScaling()
        if not isinstance(recipe, _RECIPES):
            raise TypeError(
                f"recipe must be JustInTimeScaling, DelayedScaling or ConstantScaling, "
                f"got {type(recipe).__name__}"
            )
        self.recipe = recipe
        warm_capabilities()
        self.auto_filter = auto_filter
        self.name = name
        self.check_finite = check_finite
        if cast_backend not in CAST_BACKENDS:
            raise ValueError(f"cast_backend must be one of {CAST_BACKENDS}, got {cast_backend!r}")
        self.cast_backend = cast_backend
        if isinstance(recipe, DelayedScaling):
            hist = torch.zeros(3, recipe.history_len, dtype=torch.float32, device=device)
            self.register_buffer("fp8_amax_history", hist)
        else:
            self.fp8_amax_history = None
        # the last JIT scales (input, weight, grad) for the one-pass cast (cast_backend="spec");
        # not persistent: any value is a valid guess, so checkpoints do not carry it
        guess = torch.ones(3, dtype=torch.float32, device=device)
        self.register_buffer("fp8_scale_guess", guess, persistent=False)

    @classmethod
    def from_linear(
        cls,
        mod: nn.Linear,
        recipe: JustInTimeScaling | DelayedScaling | ConstantScaling | None = None,
        **kwargs,
    ) -> Float8Linear:
        """Wrap an existing ``nn.Linear``, sharing its parameters (no copy)."""
        if not isinstance(mod, nn.Linear):
            raise TypeError(f"from_linear needs an nn.Linear, got {type(mod).__name__}")
        with torch.device("meta"):
            new = cls(
                mod.in_features,
                mod.out_features,
                bias=mod.bias is not None,
                recipe=recipe,
                **kwargs,
            )
        new.weight = mod.weight
        new.bias = mod.bias
        if new.fp8_amax_history is not None:
            new.fp8_amax_history = torch.zeros_like(new.fp8_amax_history, device=mod.weight.device)
        new.fp8_scale_guess = torch.ones_like(new.fp8_scale_guess, device=mod.weight.device)
        return new

    def _layer(self) -> str:
        return f"Float8Linear {self.name or ''}({self.in_features}->{self.out_features})"

    def use_fp8_for(self, x: torch.Tensor) -> bool:
        """Whether a call with input ``x`` runs in FP8 (False only when auto-filtered)."""
        if not self.auto_filter or not hardware_fp8_supported(x.device):
            return True
        m = x.numel() // max(x.shape[-1], 1)
        return predict_speedup(m, self.in_features, self.out_features, device=x.device) > 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            raise TypeError(f"{self._layer()}: input must be a floating tensor, got {x.dtype}")
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self._layer()}: input has {x.shape[-1]} features, expected {self.in_features}"
            )
        if self.check_finite and not torch.isfinite(x).all():
            raise ValueError(f"{self._layer()}: input holds inf/NaN; the FP8 scale is undefined")
        dev = x.device.type
        if (
            torch.is_autocast_enabled(dev)
            if _AUTOCAST_TAKES_DEVICE
            else torch.is_autocast_enabled()
        ):
            x = x.to(torch.get_autocast_dtype(dev))
        if not self.use_fp8_for(x):
            return F.linear(x, self.weight, self.bias)
        return float8_linear(
            x,
            self.weight,
            self.bias,
            self.recipe,
            self.fp8_amax_history,
            self.cast_backend,
            self.fp8_scale_guess,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, recipe={type(self.recipe).__name__}"
