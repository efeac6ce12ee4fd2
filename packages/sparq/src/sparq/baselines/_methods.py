"""Sparse-attention baselines, each in multi-query form (row ``t`` sees its causal prefix).

All take q ``(B, Hq, T, dh)`` (the last ``T`` positions), K/V ``(B, Hkv, S, dh)``, a bool
``valid`` ``(B, T, S)`` and return ``(B, Hq, T, dh)``. Selections are shared by the query heads of
a KV head (GQA), as in SparQ. Budgets are set by the caller (:func:`sparq.baselines.budget`).
"""

from __future__ import annotations

import math

import torch

from sparq.baselines._common import (
    attend_selected,
    group_softmax_scores,
    select_by_priority,
)

__all__ = [
    "h2o_attention",
    "loki_attention",
    "oracle_topk_attention",
    "quest_attention",
    "streaming_attention",
]


def oracle_topk_attention(q, K, V, valid, *, k: int, scale: float) -> torch.Tensor:
    """Exact top-k (oracle): the k keys with the largest true attention, scoring for free."""
    prio = group_softmax_scores(q, K, valid, scale)
    return attend_selected(q, K, V, select_by_priority(prio, valid, k), scale)


def streaming_attention(q, K, V, valid, *, k: int, sink_tokens: int, scale: float):
    """StreamingLLM (Xiao et al. 2024): ``sink_tokens`` first positions + the most recent rest."""
    sinks = min(sink_tokens, k)
    prio = torch.zeros(q.shape[0], K.shape[1], q.shape[2], K.shape[2], device=q.device)
    sel = select_by_priority(prio, valid, k, local_window=k - sinks, sink_tokens=sinks)
    return attend_selected(q, K, V, sel, scale)


def quest_attention(q, K, V, valid, *, pages: int, page_size: int, scale: float):
    """Quest-style page selection (Tang et al. 2024): per-page key min/max bound, top pages.

    Page upper bound ``sum_i max(q_i·min_i, q_i·max_i)`` (summed over the group's heads); the page
    holding the current token is always kept.
    """
    B, Hq, T, dh = q.shape
    Hkv, S = K.shape[1], K.shape[2]
    P = page_size
    n_pages = -(-S // P)
    pad = n_pages * P - S
    Kf = torch.nn.functional.pad(K.float(), (0, 0, 0, pad))
    vpad = torch.nn.functional.pad(valid, (0, pad))
    Kp = Kf.reshape(B, Hkv, n_pages, P, dh)
    vp = vpad.reshape(B, T, n_pages, P)
    big = torch.finfo(torch.float32).max
    page_scores = torch.zeros(B, Hkv, T, n_pages, device=q.device)
    qf = q.float().reshape(B, Hkv, Hq // Hkv, T, dh)
    for t in range(T):  # per row: page bounds only over that row's visible keys
        m = vp[:, t][:, None, :, :, None]  # (B, 1, n_pages, P, 1)
        kmin = torch.where(m, Kp, big).amin(3)  # (B, Hkv, n_pages, dh)
        kmax = torch.where(m, Kp, -big).amax(3)
        qt = qf[:, :, :, t]  # (B, Hkv, g, dh)
        ub = torch.maximum(
            qt[:, :, :, None] * kmin[:, :, None], qt[:, :, :, None] * kmax[:, :, None]
        )
        page_scores[:, :, t] = ub.sum(-1).sum(2)
    page_valid = vp.any(-1)  # (B, T, n_pages)
    sel_pages = select_by_priority(page_scores, page_valid, pages, local_window=1)
    sel = sel_pages.repeat_interleave(P, dim=-1)[..., :S] & valid[:, None]
    return attend_selected(q, K, V, sel, scale)


def loki_attention(q, K, V, valid, *, r: int, k: int, local_window: int, scale: float, basis=None):
    """Loki-style low-rank keys (Singhania et al. 2024): scores in the top-``r`` PCA directions.

    ``basis``: ``(Hkv, dh, dh)`` orthonormal PCA bases of the keys (columns by decreasing
    variance); computed from ``K`` itself (calibration on the evaluated data) when None.
    """
    B, Hq, T, dh = q.shape
    Hkv = K.shape[1]
    if basis is None:
        basis = pca_basis(K)
    Pr = basis[:, :, :r].float()  # (Hkv, dh, r)
    qf = q.float().reshape(B, Hkv, Hq // Hkv, T, dh)
    q_low = torch.einsum("bjgtd,jdr->bjgtr", qf, Pr)
    k_low = torch.einsum("bjsd,jdr->bjsr", K.float(), Pr)
    logits = torch.matmul(q_low, k_low.transpose(-1, -2).unsqueeze(2)) * scale
    logits = logits.masked_fill(~valid[:, None, None], -math.inf)
    prio = torch.softmax(logits, -1).sum(2)
    sel = select_by_priority(prio, valid, k, local_window=local_window)
    return attend_selected(q, K, V, sel, scale)


def pca_basis(K: torch.Tensor) -> torch.Tensor:
    """PCA bases of keys ``(B, Hkv, S, dh)`` per KV head → ``(Hkv, dh, dh)`` (uncentred)."""
    X = K.float().transpose(0, 1).reshape(K.shape[1], -1, K.shape[3])
    cov = X.transpose(1, 2) @ X
    _, evecs = torch.linalg.eigh(cov)
    return evecs.flip(-1)


def h2o_attention(q, K, V, valid, *, k: int, scale: float, prefill_q=None) -> torch.Tensor:
    """H2O (Zhang et al. 2023): keep ``k`` tokens = heavy hitters + recent, evicting for good.

    Sequential over the ``T`` decode rows: the cache starts from the prompt's accumulated attention
    (``prefill_q``: queries of the prompt rows, ``(B, Hq, S - T, dh)``), keeps the ``k // 2`` most
    recent tokens and the ``k - k // 2`` heaviest others; after each step the lowest-scoring
    non-recent token is evicted and never fetched again.
    """
    B, Hq, T, dh = q.shape
    Hkv, S = K.shape[1], K.shape[2]
    t0 = S - T
    recent = k // 2
    heavy = k - recent
    acc = torch.zeros(B, Hkv, S, device=q.device)
    if prefill_q is not None and t0 > 0:
        pv = torch.ones(t0, t0, dtype=torch.bool, device=q.device).tril()[None].expand(B, -1, -1)
        acc[..., :t0] = group_softmax_scores(prefill_q, K[:, :, :t0], pv, scale).sum(2)
    pos = torch.arange(S, device=q.device)
    kept = None
    outs = []
    for t in range(T):
        cur = t0 + t
        vis = valid[:, t][:, None].expand(B, Hkv, S)  # (B, Hkv, S)
        if kept is None:  # initial eviction of the prompt down to the budget
            is_recent = vis & (pos > cur - recent)
            score = torch.where(vis & ~is_recent, acc, torch.full_like(acc, -math.inf))
            top = torch.topk(score, min(heavy, S), dim=-1).indices
            ok = score.gather(-1, top) > -math.inf
            kept = is_recent | torch.zeros_like(is_recent).scatter_(-1, top, ok)
        else:
            kept = kept | (vis & (pos == cur))
            over = kept.sum(-1) > k
            cand = kept & (pos <= cur - recent)
            score = torch.where(cand, acc, torch.full_like(acc, math.inf))
            worst = score.argmin(-1, keepdim=True)
            drop = torch.zeros_like(kept).scatter_(-1, worst, True) & over[..., None]
            kept = kept & ~drop
        sel = kept[:, :, None, :]  # (B, Hkv, 1, S)
        qt = q[:, :, t : t + 1]
        outs.append(attend_selected(qt, K, V, sel, scale))
        g = Hq // Hkv
        qg = qt.float().reshape(B, Hkv, g, 1, dh)
        logits = torch.matmul(qg, K.float().transpose(-1, -2).unsqueeze(2)) * scale
        logits = logits.masked_fill(~sel.unsqueeze(2), -math.inf)
        acc = acc + torch.softmax(logits, -1).sum(2)[:, :, 0]
    return torch.cat(outs, dim=2)
