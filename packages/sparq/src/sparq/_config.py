"""SparQConfig: how r and k are chosen at each decode step, plus window, sinks and fallbacks."""

from __future__ import annotations

from dataclasses import dataclass

from sparq.cost import compression_ratio, rk_for_compression

__all__ = ["SparQConfig", "StepPlan"]


@dataclass(frozen=True)
class StepPlan:
    """The resolved knobs of one decode step (``dense=True``: use ordinary attention)."""

    dense: bool
    r: int = 0
    k: int = 0
    local_window: int = 0
    sink_tokens: int = 0
    reallocation: bool = False


@dataclass(frozen=True)
class SparQConfig:
    """SparQ settings (Ribar et al. 2024, §3 and §5).

    Either give ``compression`` (r and k follow the **live** sequence length at every step:
    ``r = dh/c``, ``k = S_live/(2c)``, see :func:`sparq.cost.rk_for_compression`), or fixed ``r``
    and ``k`` (either may also be combined with ``compression``: an explicit value wins).

    Attributes:
        compression: target transfer reduction (e.g. 8 for 1/8 of the dense bytes), or None.
        r: query components for the approximate scores, ``1 <= r <= dh``.
        k: positions attended exactly (the local window and sinks count inside k).
        local_window: most recent positions always kept (clipped to fit in k).
        sink_tokens: first positions always kept (clipped to fit in k).
        reallocation: mean-value reallocation (step 3); None = on for MHA, off for GQA.
        min_seq_len: live lengths below this use dense attention (SparQ's fixed costs dominate
            there). Dense is also used whenever ``k >= S_live`` or the modelled transfer of SparQ
            is not below dense — SparQ is never chosen when it cannot move fewer bytes.
        dense_fallback: set False to run SparQ even where dense would be chosen (testing: with
            ``r = dh`` and ``k >= S`` SparQ then reproduces dense attention).
    """

    compression: float | None = None
    r: int | None = None
    k: int | None = None
    local_window: int = 16
    sink_tokens: int = 0
    reallocation: bool | None = None
    min_seq_len: int = 0
    dense_fallback: bool = True

    def __post_init__(self) -> None:
        if self.compression is None and (self.r is None or self.k is None):
            raise ValueError(
                "SparQConfig needs compression=<ratio> or both r=<int> and k=<int>; got "
                f"compression={self.compression!r}, r={self.r!r}, k={self.k!r}"
            )
        if self.compression is not None and not self.compression >= 1:
            raise ValueError(f"compression must be >= 1 (e.g. 8 for 1/8), got {self.compression}")
        if self.r is not None and self.r < 1:
            raise ValueError(f"r must be >= 1, got {self.r}")
        if self.k is not None and self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        for name in ("local_window", "sink_tokens", "min_seq_len"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def plan(
        self, seq_len: int, head_dim: int, num_q_heads: int = 1, num_kv_heads: int = 1
    ) -> StepPlan:
        """Resolve r, k, window and sinks for a decode step at live length ``seq_len``."""
        if seq_len < 1 or head_dim < 1:
            raise ValueError(f"seq_len and head_dim must be >= 1, got {seq_len}, {head_dim}")
        if self.compression is not None:
            r0, k0 = rk_for_compression(seq_len, head_dim, self.compression)
        else:
            r0 = k0 = 0
        r = min(head_dim, self.r if self.r is not None else r0)
        if self.r is not None and self.r > head_dim:
            raise ValueError(f"r={self.r} exceeds the model's head_dim={head_dim}")
        k = self.k if self.k is not None else k0
        g = max(1, num_q_heads // max(1, num_kv_heads))
        if self.dense_fallback and (
            seq_len < self.min_seq_len
            or k >= seq_len
            or compression_ratio(seq_len, head_dim, r, k, g) <= 1.0
        ):
            return StepPlan(dense=True)
        sinks = min(self.sink_tokens, k)
        window = min(self.local_window, k - sinks)
        realloc = (num_q_heads == num_kv_heads) if self.reallocation is None else self.reallocation
        return StepPlan(False, r, k, window, sinks, bool(realloc))
