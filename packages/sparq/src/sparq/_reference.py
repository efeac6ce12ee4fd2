"""Pure-PyTorch reference of SparQ Attention (Ribar et al., ICML 2024, Algorithm 1) with GQA.

This module *defines* the semantics that every faster implementation must reproduce:

Per batch row ``b``, KV head ``j`` (query heads ``h`` with ``h // group == j``), one query step:

1. Components: ``i1`` = the ``r`` indices of the largest ``sum_h |q_h|`` over the group (ties: lower
   index first). Coverage ``c_h = ||q_h[i1]||_1 / ||q_h||_1`` (1 when ``q_h == 0``).
2. Approximate scores (Alg. 1 line 3, τ correction): ``s_hat_h = softmax_valid(q_h[i1] · K_t[i1, :]
   * scale / sqrt(c_h))`` with ``scale = 1/sqrt(dh)`` by default — i.e. the paper's
   ``1 / sqrt(dh · ||q[i1]||_1 / ||q||_1)``.
3. Selection: priority ``p = sum_h s_hat_h`` (shared by the group); the first ``sink_tokens``
   and the last ``local_window`` valid positions get priority +inf; invalid positions -inf. The
   ``k`` highest priorities are selected (a stable sort: ties go to the lower position). Window
   and sinks count inside the ``k`` budget, so exactly ``min(k, n_valid)`` positions receive weight.
4. ``α_h = sum_{i in sel} s_hat_h[i]``; ``y_h = softmax(q_h · K[sel]^T * scale) V[sel]`` in fp32;
   with reallocation ``y_h = α_h y_h + (1 - α_h) v_mean_j``.

All softmaxes and accumulations run in fp32; indices are int64. Output dtype = ``q.dtype``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["SparQStats", "forced_positions", "sparq_attention_reference", "stable_topk_indices"]


@dataclass
class SparQStats:
    """Diagnostics of one SparQ call (decode: ``T`` dimension absent).

    Attributes:
        alpha: fp32 ``(B, Hq[, T])`` — approximate softmax mass of the selected positions (paper α).
        indices: int64 ``(B, Hkv[, T], k')`` selected positions, ``k' = min(k, S)``; -1 marks unused
            slots when a sequence holds fewer than ``k`` valid positions.
        components: int64 ``(B, Hkv[, T], r)`` — the query components ``i1`` of step 1.
        coverage: fp32 ``(B, Hq[, T])`` — ``||q[i1]||_1 / ||q||_1`` (heavy-tailedness of q).
    """

    alpha: torch.Tensor
    indices: torch.Tensor
    components: torch.Tensor
    coverage: torch.Tensor


def stable_topk_indices(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest entries of ``x`` along the last dim, ties to the lower index.

    ``x``: any float tensor ``(..., N)``; returns int64 ``(..., min(k, N))`` in descending order.
    """
    order = torch.sort(x, dim=-1, descending=True, stable=True).indices
    return order[..., : min(k, x.shape[-1])]


def forced_positions(valid: torch.Tensor, local_window: int, sink_tokens: int) -> torch.Tensor:
    """Bool mask of always-selected positions: first ``sink_tokens``, last ``local_window`` valid.

    ``valid``: bool ``(..., S)``. Ranks count valid positions only, so left padding is handled.
    """
    rank = torch.cumsum(valid.to(torch.int64), dim=-1) - 1
    n = valid.sum(-1, keepdim=True)
    return valid & ((rank < sink_tokens) | (rank >= n - local_window))


def _components_and_coverage(qf: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """qf fp32 ``(B, Hkv, g, T, dh)`` → i1 int64 ``(B, Hkv, T, r)``, coverage ``(B, Hkv, g, T)``."""
    absq = qf.abs()
    i1 = stable_topk_indices(absq.sum(2), r)
    g = qf.shape[2]
    sel = absq.gather(-1, i1.unsqueeze(2).expand(-1, -1, g, -1, -1))
    total = absq.sum(-1)
    cover = torch.where(total > 0, sel.sum(-1) / total.clamp_min(1e-30), torch.ones_like(total))
    return i1, cover


def _select(
    s_hat: torch.Tensor, valid: torch.Tensor, k: int, local_window: int, sink_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """s_hat ``(B, Hkv, g, T, S)``, valid ``(B, 1, T, S)`` → idx ``(B, Hkv, T, k')``, used mask."""
    prio = s_hat.sum(2)
    forced = forced_positions(valid, local_window, sink_tokens)
    prio = torch.where(forced, torch.full_like(prio, math.inf), prio)
    prio = torch.where(valid, prio, torch.full_like(prio, -math.inf))
    idx = stable_topk_indices(prio, k)
    used = valid.expand(-1, idx.shape[1], -1, -1).gather(-1, idx)
    return idx, used


def sparq_core(
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    valid: torch.Tensor,
    *,
    r: int,
    k: int,
    local_window: int,
    sink_tokens: int,
    scale: float,
    reallocation: bool,
    v_mean: torch.Tensor | None,
    K_t: torch.Tensor | None = None,
) -> tuple[torch.Tensor, SparQStats]:
    """SparQ for ``T`` query rows, each with its own valid mask (shared by decode and prefill).

    q ``(B, Hq, T, dh)``; K, V ``(B, Hkv, S, dh)``; valid bool ``(B, T, S)``; v_mean fp32
    ``(B, Hkv, T, dh)`` or None. ``T == 1`` gathers the selected rows (the decode data movement);
    ``T > 1`` applies the selection as a mask (same maths, bounded memory). Returns y ``(B, Hq, T,
    dh)`` in q.dtype and stats with a ``T`` dimension.
    """
    B, Hq, T, dh = q.shape
    Hkv, S = K.shape[1], K.shape[2]
    g = Hq // Hkv
    qf = q.float().reshape(B, Hkv, g, T, dh)
    Kf = K.float()
    Vf = V.float()
    valid4 = valid[:, None]  # (B, 1, T, S)
    valid5 = valid[:, None, None]  # (B, 1, 1, T, S)

    i1, cover = _components_and_coverage(qf, r)
    scale_hat = scale / torch.sqrt(cover.clamp_min(1e-30))  # τ correction, (B, Hkv, g, T)
    if T == 1:
        kt = K_t.float() if K_t is not None else Kf.transpose(-1, -2)
        kt_sel = kt.gather(2, i1[:, :, 0, :, None].expand(-1, -1, -1, S))  # (B, Hkv, r, S)
        q_sel = qf.gather(-1, i1.unsqueeze(2).expand(-1, -1, g, -1, -1))  # (B, Hkv, g, 1, r)
        logits_hat = torch.matmul(q_sel, kt_sel.unsqueeze(2))  # (B, Hkv, g, 1, S)
    else:
        keep = torch.zeros_like(qf[:, :, 0]).scatter_(-1, i1, 1.0)  # (B, Hkv, T, dh)
        logits_hat = torch.matmul(qf * keep.unsqueeze(2), Kf.transpose(-1, -2).unsqueeze(2))
    logits_hat = logits_hat * scale_hat[..., None]
    logits_hat = logits_hat.masked_fill(~valid5, -math.inf)
    s_hat = torch.softmax(logits_hat, dim=-1)

    idx, used = _select(s_hat, valid4, k, local_window, sink_tokens)  # (B, Hkv, T, k')
    idx5 = idx.unsqueeze(2).expand(-1, -1, g, -1, -1)
    alpha = (s_hat.gather(-1, idx5) * used.unsqueeze(2)).sum(-1)  # (B, Hkv, g, T)

    if T == 1:
        rows = idx[:, :, 0, :, None].expand(-1, -1, -1, dh)  # (B, Hkv, k', dh)
        K_sel = Kf.gather(2, rows)
        V_sel = Vf.gather(2, rows)
        logits = torch.matmul(qf, K_sel.transpose(-1, -2).unsqueeze(2)) * scale  # (B,Hkv,g,1,k')
        logits = logits.masked_fill(~used.unsqueeze(2), -math.inf)
        w = torch.softmax(logits, dim=-1)
        y = torch.matmul(w, V_sel.unsqueeze(2))  # (B, Hkv, g, 1, dh)
    else:
        sel_mask = torch.zeros(B, Hkv, T, S, dtype=torch.bool, device=q.device)
        sel_mask.scatter_(-1, idx, used)
        logits = torch.matmul(qf, Kf.transpose(-1, -2).unsqueeze(2)) * scale  # (B,Hkv,g,T,S)
        logits = logits.masked_fill(~sel_mask.unsqueeze(2), -math.inf)
        w = torch.softmax(logits, dim=-1)
        y = torch.matmul(w, Vf.unsqueeze(2))
    if reallocation:
        if v_mean is None:
            raise ValueError("reallocation=True needs v_mean")
        a = alpha[..., None]
        y = a * y + (1.0 - a) * v_mean.float().unsqueeze(2)
    idx_out = torch.where(used, idx, torch.full_like(idx, -1))
    stats = SparQStats(
        alpha=alpha.reshape(B, Hq, T),
        indices=idx_out,
        components=i1,
        coverage=cover.reshape(B, Hq, T),
    )
    return y.reshape(B, Hq, T, dh).to(q.dtype), stats


def masked_v_mean(V: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """fp32 mean of the valid rows of V ``(B, Hkv, S, dh)`` per row of valid ``(B, T, S)``.

    Returns ``(B, Hkv, T, dh)``.
    """
    w = valid.float()
    w = w / w.sum(-1, keepdim=True).clamp_min(1.0)
    return torch.matmul(w[:, None], V.float())


def sparq_attention_reference(
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    *,
    r: int,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
    v_mean: torch.Tensor | None = None,
    K_t: torch.Tensor | None = None,
    seq_lens: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    scale: float | None = None,
    reallocation: bool | None = None,
    return_stats: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, SparQStats]:
    """Pure-PyTorch SparQ decode step; same arguments as :func:`sparq.sparq_attention`.

    Always runs this reference (any device/dtype); see the module docstring for the exact maths.
    """
    from sparq._validate import check_decode_args, check_rk, valid_mask_from

    check_decode_args(q, K, V, K_t)
    B, Hq, _, dh = q.shape
    Hkv, S = K.shape[1], K.shape[2]
    check_rk(r, k, dh, local_window, sink_tokens)
    valid = valid_mask_from(B, S, q.device, seq_lens, attention_mask)[:, None]  # (B, 1, S)
    if reallocation is None:
        reallocation = Hq == Hkv
    vm = None
    if reallocation:
        if v_mean is None:
            vm = masked_v_mean(V, valid)
        else:
            if tuple(v_mean.shape) != (B, Hkv, dh):
                raise ValueError(
                    f"v_mean must have shape (B, Hkv, dh) = {(B, Hkv, dh)}, "
                    f"got {tuple(v_mean.shape)}"
                )
            vm = v_mean.float()[:, :, None]
    y, stats = sparq_core(
        q,
        K,
        V,
        valid,
        r=r,
        k=k,
        local_window=local_window,
        sink_tokens=sink_tokens,
        scale=float(scale) if scale is not None else 1.0 / math.sqrt(dh),
        reallocation=bool(reallocation),
        v_mean=vm,
        K_t=K_t,
    )
    if not return_stats:
        return y
    stats = SparQStats(
        alpha=stats.alpha[:, :, 0],
        indices=stats.indices[:, :, 0],
        components=stats.components[:, :, 0],
        coverage=stats.coverage[:, :, 0],
    )
    return y, stats
