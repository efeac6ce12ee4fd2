"""Scaling recipes: when and how the per-tensor scaling biases are chosen.

All recipes are frozen (hashable) dataclasses so ``torch.compile`` can specialise on them.
Perez et al. 2023: ``JustInTimeScaling`` is the paper's FP8-AMAX (Section 3), ``ConstantScaling``
its FP8-CSCALE baseline (Section 4, Tables 3 and 6). ``DelayedScaling`` follows the amax-history
scheme of NVIDIA Transformer Engine (history of length L, max / most-recent / EMA).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._formats import E4M3, E5M2, FP8Format, get_format

__all__ = ["ConstantScaling", "DelayedScaling", "Formats", "JustInTimeScaling", "Recipe"]


@dataclass(frozen=True)
class Formats:
    """FP8 formats per role: ``forward`` for weights and activations, ``backward`` for gradients.

    The default is the "hybrid" choice of the paper: E4M3 forward, E5M2 gradients.
    """

    forward: FP8Format = E4M3
    backward: FP8Format = E5M2

    def __post_init__(self) -> None:
        object.__setattr__(self, "forward", get_format(self.forward))
        object.__setattr__(self, "backward", get_format(self.backward))


_GEMMS = ("output", "grad_input", "grad_weight")
_FAST_ACCUM_ALIASES = {"none": (), "forward": ("output",), "all": _GEMMS}


def _fast_accum_set(spec: str) -> frozenset | None:
    """GEMM names that use fast accumulation for a ``fast_accum`` value (None: invalid)."""
    if spec in _FAST_ACCUM_ALIASES:
        return frozenset(_FAST_ACCUM_ALIASES[spec])
    parts = spec.split("+")
    if not all(p in _GEMMS for p in parts):
        return None
    return frozenset(parts)


def fast_accum_for(recipe, gemm: str) -> bool:
    """Whether ``recipe``'s ``gemm`` ("output", "grad_input", "grad_weight") uses fast
    accumulation in ``torch._scaled_mm``."""
    return gemm in (_fast_accum_set(recipe.fast_accum) or ())


@dataclass(frozen=True)
class _RecipeBase:
    formats: Formats = field(default_factory=Formats)
    grad_weight: str = "fp8"
    margin: int = 0
    grad_margin: int = 0
    pow2: bool = True
    fast_accum: str = "none"
    amax_group: Any = field(default=None, compare=False, hash=False)

    def _validate(self) -> None:
        if self.grad_weight not in ("fp8", "hp"):
            raise ValueError(
                f"grad_weight must be 'fp8' (FP8 weight-gradient GEMM) or 'hp' (high precision), "
                f"got {self.grad_weight!r}"
            )
        for name in ("margin", "grad_margin"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an int, got {v!r}")
        if not isinstance(self.fast_accum, str) or _fast_accum_set(self.fast_accum) is None:
            raise ValueError(
                "fast_accum must be 'none', 'forward', 'all' or a '+'-joined subset of "
                f"{_GEMMS} (e.g. 'output+grad_input'), got {self.fast_accum!r}"
            )
        if not isinstance(self.formats, Formats):
            raise TypeError(f"formats must be a Formats(...), got {type(self.formats).__name__}")

    def __post_init__(self) -> None:
        self._validate()


@dataclass(frozen=True)
class JustInTimeScaling(_RecipeBase):
    """Paper FP8-AMAX (the default): every tensor's bias comes from its own amax at every step.

    Attributes:
        formats: formats per role (E4M3 forward, E5M2 gradients).
        grad_weight: ``"fp8"`` runs the weight-gradient GEMM in FP8 (the paper), ``"hp"`` keeps
            it in the input precision.
        margin / grad_margin: headroom (powers of two) for weights+activations / gradients.
        pow2: power-of-two scales ``2**bias`` (the paper); False uses fp32 scales ``max/amax``.
        fast_accum: which ``torch._scaled_mm`` calls use Hopper's fast accumulation:
            ``"none"`` (default), ``"forward"`` (output GEMM only, torchao's default),
            ``"all"``, or a ``"+"``-joined subset of ``"output"``, ``"grad_input"``,
            ``"grad_weight"``. On the H200 (8192^3, cuBLAS of torch 2.11) fast accumulation
            made each GEMM slower (output 882 vs 825 us: cuBLAS picks another kernel) and less
            accurate (52 vs 55.6 dB against float64), hence off by default.
        amax_group: optional ``torch.distributed`` process group; when set, every amax is
            all-reduced with MAX over it before the bias is computed, so all ranks (data or
            tensor parallel) use the same scales. Not part of the hash.
    """


@dataclass(frozen=True)
class DelayedScaling(_RecipeBase):
    """Bias from an amax history of the last ``history_len`` steps (one-pass cast).

    The current step casts with the bias derived from the history; the current amax (measured in
    the same pass) is then pushed into the history. A step whose amax is inf/NaN is not pushed
    (the history keeps its previous values) and its non-finite entries come out as NaN. While
    the history is still empty, ``init_bias`` is used (0 = scale 1).

    Attributes:
        history_len: L, the number of past amaxes kept (>= 1).
        algo: ``"max"`` (max over the history), ``"most_recent"`` or ``"ema"`` (weights
            ``ema_decay**i`` over the filled history slots, newest first).
        ema_decay: decay of the ``"ema"`` algorithm, in (0, 1).
        init_bias: bias used before anything was recorded.
    """

    history_len: int = 16
    algo: str = "max"
    ema_decay: float = 0.9
    init_bias: int = 0

    def _validate(self) -> None:
        super()._validate()
        if not isinstance(self.history_len, int) or self.history_len < 1:
            raise ValueError(f"history_len must be an int >= 1, got {self.history_len!r}")
        if self.algo not in ("max", "most_recent", "ema"):
            raise ValueError(f"algo must be 'max', 'most_recent' or 'ema', got {self.algo!r}")
        if not 0.0 < float(self.ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay!r}")


@dataclass(frozen=True)
class ConstantScaling(_RecipeBase):
    """Paper FP8-CSCALE: one constant bias for weights, activations and gradients.

    Attributes:
        bias: the integer scaling bias (scale ``2**bias``), in [-31, 31].
        grad_bias: optional separate bias for gradients (default: ``bias``).
    """

    bias: int = 0
    grad_bias: int | None = None

    def _validate(self) -> None:
        super()._validate()
        for v in (self.bias, self.grad_bias):
            if v is not None and (not isinstance(v, int) or not -31 <= v <= 31):
                raise ValueError(f"constant biases must be ints in [-31, 31], got {v!r}")


Recipe = JustInTimeScaling | DelayedScaling | ConstantScaling
