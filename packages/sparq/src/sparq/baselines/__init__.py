"""Baselines at the same transfer budget as SparQ, in one multi-query harness.

Methods (``METHODS``): ``dense``, ``sparq`` (API defaults: reallocation off for GQA),
``sparq_realloc`` (mean-value reallocation forced on), ``oracle_topk`` (exact top-k, scoring for
free), ``h2o`` (heavy hitters + recent, eviction), ``streaming_llm`` (sinks + window), ``quest``
(page min/max bounds), ``loki`` (low-rank PCA keys). :func:`budget` turns a compression ratio
``c`` and the live length ``S`` into each method's knobs so that all move about ``2·S·dh / c``
elements per KV head and step (:mod:`sparq.cost`); the achieved fraction is reported as
``transfer``.
"""

from __future__ import annotations

import math

import torch

from sparq._api import sparq_attention_prefill
from sparq.baselines._common import causal_valid, dense_attention
from sparq.baselines._methods import (
    h2o_attention,
    loki_attention,
    oracle_topk_attention,
    pca_basis,
    quest_attention,
    streaming_attention,
)
from sparq.cost import rk_for_compression

__all__ = [
    "METHODS",
    "budget",
    "h2o_attention",
    "loki_attention",
    "multi_query_attention",
    "oracle_topk_attention",
    "pca_basis",
    "quest_attention",
    "streaming_attention",
]

METHODS = (
    "dense", "sparq", "sparq_realloc", "oracle_topk", "h2o", "streaming_llm", "quest", "loki",
)  # fmt: skip


def budget(method: str, S: int, dh: int, compression: float) -> dict:
    """Knobs of ``method`` at live length ``S`` for a ``compression``× transfer reduction.

    Returns a dict with the method's parameters and ``transfer`` = modelled elements moved /
    dense elements (``2·S·dh``). SparQ and Loki split the budget between step 1 and step 2
    (``r = dh/c``, ``k = S/(2c)``); H2O, StreamingLLM and the oracle spend it all on ``k = S/c``
    positions; Quest pays ``2·dh`` per page of ``P = 2c`` (min 8) tokens for its bounds.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if not compression >= 1:
        raise ValueError(f"compression must be >= 1, got {compression}")
    dense = 2 * S * dh
    if method == "dense" or compression == 1:
        return {"transfer": 1.0}
    if method in ("sparq", "sparq_realloc", "loki"):
        r, k = rk_for_compression(S, dh, compression)
        k = min(k, S)
        win = max(1, k // 4)
        return {"r": r, "k": k, "local_window": win, "transfer": (S * r + 2 * k * dh) / dense}
    if method == "quest":
        P = max(8, int(2 * compression))
        n_pages = math.ceil(S / P)
        tokens = S / compression - S / P
        pages = max(1, round(tokens / P))
        return {
            "pages": pages,
            "page_size": P,
            "transfer": (2 * dh * n_pages + 2 * min(S, pages * P) * dh) / dense,
        }
    k = max(1, min(S, round(S / compression)))
    out = {"k": k, "transfer": 2 * k * dh / dense}
    if method == "streaming_llm":
        out["sink_tokens"] = min(4, k // 2)
    return out


def multi_query_attention(
    method: str,
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    *,
    compression: float,
    scale: float | None = None,
    prefill_q: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    reallocation: bool | None = None,
) -> tuple[torch.Tensor, dict]:
    """Run ``method`` for the last ``T`` query rows (row ``t`` sees keys ``<= S - T + t``).

    Args:
        q: ``(B, Hq, T, dh)``; K, V: ``(B, Hkv, S, dh)``.
        compression: transfer reduction (the budget is set from the first row's live length).
        prefill_q: the prompt's queries ``(B, Hq, S - T, dh)`` (H2O accumulates their attention).
        attention_mask: optional bool ``(B, S)`` valid keys.

    Returns:
        ``(y (B, Hq, T, dh), knobs dict)``.
    """
    B, _, T, dh = q.shape
    S = K.shape[2]
    sc = scale if scale is not None else 1.0 / math.sqrt(dh)
    live = S - T + 1
    b = budget(method, live, dh, compression)
    valid = causal_valid(B, T, S, q.device, attention_mask)
    if method == "dense" or compression == 1:
        return dense_attention(q, K, V, valid, sc), b
    if method in ("sparq", "sparq_realloc"):
        if method == "sparq_realloc":
            reallocation = True
        y = sparq_attention_prefill(
            q, K, V, r=b["r"], k=b["k"], local_window=b["local_window"], scale=sc,
            attention_mask=attention_mask, reallocation=reallocation,
        )  # fmt: skip
        return y, b
    if method == "loki":
        y = loki_attention(
            q, K, V, valid, r=b["r"], k=b["k"], local_window=b["local_window"], scale=sc
        )
        return y, b
    if method == "oracle_topk":
        return oracle_topk_attention(q, K, V, valid, k=b["k"], scale=sc), b
    if method == "streaming_llm":
        return streaming_attention(
            q, K, V, valid, k=b["k"], sink_tokens=b["sink_tokens"], scale=sc
        ), b
    if method == "quest":
        return quest_attention(
            q, K, V, valid, pages=b["pages"], page_size=b["page_size"], scale=sc
        ), b
    return h2o_attention(q, K, V, valid, k=b["k"], scale=sc, prefill_q=prefill_q), b
