"""The u-μP hyperparameter configuration (u-μP paper §4, Table 3; reference §2.4)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEPTH_RULES", "EMBEDDING_LR_RULES", "UMupConfig"]

DEPTH_RULES = ("sqrt", "completep")
EMBEDDING_LR_RULES = ("fan_out^-1/2", "const")
_ALPHAS = (
    "alpha_ffn_act",
    "alpha_attn_softmax",
    "alpha_res",
    "alpha_res_attn_ratio",
    "alpha_loss_softmax",
)


@dataclass(frozen=True)
class UMupConfig:
    """The u-μP hyperparameters. Every α defaults to 1, which the paper shows is near-optimal.

    Attributes:
        alpha_ffn_act: multiplier inside the FFN nonlinearity, ``silu_glu(x, g) = x·g·σ(α·g)``
            with a unit-scale compensation (u-μP §4.2).
        alpha_attn_softmax: attention logit multiplier, ``logits = α·q·kᵀ / d_head`` (μP's 1/d).
        alpha_res: ratio of the residual branches' contribution to the embedding's (Appendix G).
        alpha_res_attn_ratio: attention-branch : MLP-branch contribution ratio ρ (Appendix G).
        alpha_loss_softmax: multiplier on the logits before the loss softmax.
        depth_rule: ``"sqrt"`` (Depth-μP: branch contributions ∝ L^-1/2, Adam LR of parameters
            inside the block stack × (L/L₀)^-1/2) or ``"completep"`` (CompleteP, α = 1: branch
            contributions ∝ L^-1 and no depth LR factor).
        base_depth: L₀, the number of layers at which both depth rules reduce to the plain rule.
        embedding_lr_rule: ``"fan_out^-1/2"`` (u-μP's embedding LR rule, LR × d_model^-1/2) or
            ``"const"`` (μP's constant embedding LR).
    """

    alpha_ffn_act: float = 1.0
    alpha_attn_softmax: float = 1.0
    alpha_res: float = 1.0
    alpha_res_attn_ratio: float = 1.0
    alpha_loss_softmax: float = 1.0
    depth_rule: str = "sqrt"
    base_depth: int = 1
    embedding_lr_rule: str = "fan_out^-1/2"

    def __post_init__(self) -> None:
        for name in _ALPHAS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(
                    f"UMupConfig.{name} must be a positive float, got {type(v).__name__} {v!r}"
                )
            if not (math.isfinite(v) and v > 0):
                raise ValueError(
                    f"UMupConfig.{name} must be a finite number > 0, got {v!r}; α's are "
                    "multipliers (1 is the default), so use e.g. 0.5 or 2.0."
                )
            object.__setattr__(self, name, float(v))
        if self.depth_rule not in DEPTH_RULES:
            raise ValueError(
                f"UMupConfig.depth_rule must be one of {DEPTH_RULES}, got {self.depth_rule!r}"
            )
        if self.embedding_lr_rule not in EMBEDDING_LR_RULES:
            raise ValueError(
                f"UMupConfig.embedding_lr_rule must be one of {EMBEDDING_LR_RULES}, "
                f"got {self.embedding_lr_rule!r}"
            )
        if isinstance(self.base_depth, bool) or not isinstance(self.base_depth, int):
            raise TypeError(f"UMupConfig.base_depth must be an int, got {self.base_depth!r}")
        if self.base_depth < 1:
            raise ValueError(f"UMupConfig.base_depth must be >= 1, got {self.base_depth}")

    def replace(self, **changes: Any) -> UMupConfig:
        """Return a copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UMupConfig:
        """Build from a dict, rejecting unknown keys with the list of valid ones."""
        if not isinstance(data, dict):
            raise TypeError(f"UMupConfig.from_dict expects a dict, got {type(data).__name__}")
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ValueError(
                f"unknown UMupConfig field(s) {unknown}; valid fields are {sorted(valid)}"
            )
        return cls(**data)

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to a JSON string; also write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> UMupConfig:
        """Parse a JSON string, or read a ``.json`` file path."""
        s = str(text_or_path)
        if not s.lstrip().startswith("{"):
            p = Path(s)
            if not p.exists():
                raise ValueError(f"{s!r} is neither a JSON object string nor an existing file")
            s = p.read_text()
        try:
            data = json.loads(s)
        except json.JSONDecodeError as e:
            raise ValueError(f"UMupConfig.from_json: invalid JSON ({e})") from e
        return cls.from_dict(data)

    @property
    def alphas(self) -> dict[str, float]:
        """The five α hyperparameters by name."""
        return {n: getattr(self, n) for n in _ALPHAS}
