"""Histogram selection and step 2 without the index list: every chunk attends its own winners.

:func:`select_topk_hist` ends with two kernels that only turn the chunks' winners into a
position-ordered index list (a count per chunk, then a prefix-sum emit), and step 2
(:func:`sparq.kernels.sparse_attention`) splits that list again across programs. The order of
the selected rows does not matter to attention, so here the chunk programs of the selection do
step 2 directly (paper Alg. 1, step 3, split like flash-decoding with one split per chunk):

1. ``_hthr_kernel``, ``_hcand_kernel`` (and ``_hresolve_kernel`` unless ``fused_resolve``) of the
   histogram selection, unchanged: the row threshold ``T`` and the last tied position ``P_lim``
   (``thr_in_cand``: no threshold kernel, the candidate programs derive the thresholds).
2. ``_hattend_kernel`` (rows x chunks): the chunk's candidate slots are compared against
   ``(T, P_lim)`` (with ``fused_resolve`` every program resolves its row itself first), the
   winners' K and V rows are gathered and an online softmax runs for all ``G`` query heads of the
   KV group; the chunk's partial ``(max, sum, acc)`` is stored. A row the buckets could not
   resolve (the sample misjudged) is selected exactly by the chunk-0 program over the whole row,
   which then attends all ``k`` winners itself.
3. ``_merge_kernel`` of step 2 merges the chunks' partials (with ``merge``: the last chunk
   program of each row to finish does it, found by a per-row atomic counter).

Two launches fewer than selection + step 2, and no index list in memory. The selected set is the
same as :func:`select_topk_hist`'s (ties to the lowest positions); only the summation order of
the attention differs. No reallocation (alpha is not summed): the dispatch uses this path for
shapes without the mean-value blend. No host synchronisation (CUDA-graph capturable).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import F32DOT, pdl_enter, pdl_exit, pdl_kw
from ._select_hist import BCAP, _block_winners, _resolve_row, hist_plan, select_topk_hist
from ._select_sample import _exact_row_fallback
from ._step2 import _group_q, _merge_kernel, _online_step

__all__ = ["hist_attention"]


@triton.jit
def _hattend_kernel(
    q_ptr, k_ptr, v_ptr, logit_ptr, lens_ptr, stat_ptr, cnt_ptr, ckey_ptr, cpos_ptr, res_ptr,
    hist_ptr, blist_ptr, fidx_ptr, falpha_ptr, pm_ptr, pl_ptr, pacc_ptr, S, HKV, NCH, K,
    window, sinks, scale, DH: tl.constexpr, DHP: tl.constexpr, G: tl.constexpr,
    GP: tl.constexpr, GS: tl.constexpr, NCHP: tl.constexpr, CAP: tl.constexpr,
    NB: tl.constexpr, BCAP: tl.constexpr, BK: tl.constexpr, CHF: tl.constexpr,
    FUSED: tl.constexpr, F32DOT: tl.constexpr, PDL: tl.constexpr = False, ctr_ptr=None,
    out_ptr=None, MERGE: tl.constexpr = False, MB: tl.constexpr = 16,
    ZERO_HIST: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1)
    seq_len = tl.load(lens_ptr + bh // HKV)
    if FUSED:  # every chunk resolves its row itself (the resolve kernel is not launched)
        T, plim, ok = _resolve_row(
            cnt_ptr, hist_ptr, blist_ptr, ckey_ptr, cpos_ptr, bh, NCH, K, NCHP, CAP, NB, BCAP
        )
    else:
        T = tl.load(res_ptr + bh * 3)
        plim = tl.load(res_ptr + bh * 3 + 1)
        ok = tl.load(res_ptr + bh * 3 + 2)
    heads, hmask, d, dmask, q, m_i, l_i, acc = _group_q(q_ptr, bh, G, DH, GP, DHP)
    k_base = k_ptr + bh * S * DH
    v_base = v_ptr + bh * S * DH
    if ok != 0:
        n = tl.minimum(tl.load(cnt_ptr + bh * NCH + c), CAP)
        for b0 in range(0, n, BK):
            _, pos, sel = _block_winners(ckey_ptr, cpos_ptr, T, plim, bh, c, NCH, n, b0, CAP, BK)
            take = sel & (pos < seq_len)
            off = pos.to(tl.int64)[:, None] * DH + d[None, :]
            kvm = take[:, None] & dmask[None, :]
            kb = tl.load(k_base + off, mask=kvm, other=0.0)
            vb = tl.load(v_base + off, mask=kvm, other=0.0)
            m_i, l_i, acc = _online_step(q, kb, vb, take, m_i, l_i, acc, scale, F32DOT)
    elif c == 0:
        # the sample misjudged this row: its exact selection over the whole row (rare), written
        # to a scratch index row that this program then attends alone
        hs = tl.arange(0, GS)
        M = tl.load(stat_ptr + bh * 2 * GS + hs)
        inv_z = tl.load(stat_ptr + bh * 2 * GS + GS + hs)
        _exact_row_fallback(
            logit_ptr + bh * G * S, fidx_ptr + bh * K, falpha_ptr, bh, hs, M, inv_z, seq_len, S,
            K, window, sinks, G, GS, CHF,
        )  # fmt: skip
        tl.debug_barrier()  # the index row is read back by other threads of this program
        for b0 in range(0, K, BK):
            j = b0 + tl.arange(0, BK)
            jm = j < K
            pos = tl.load(fidx_ptr + bh * K + j, mask=jm, other=0)
            take = jm & (pos < seq_len)
            off = pos.to(tl.int64)[:, None] * DH + d[None, :]
            kvm = take[:, None] & dmask[None, :]
            kb = tl.load(k_base + off, mask=kvm, other=0.0)
            vb = tl.load(v_base + off, mask=kvm, other=0.0)
            m_i, l_i, acc = _online_step(q, kb, vb, take, m_i, l_i, acc, scale, F32DOT)
    po = bh * G * NCH + heads * NCH + c
    tl.store(pm_ptr + po, m_i, mask=hmask)
    tl.store(pl_ptr + po, l_i, mask=hmask)
    tl.store(pacc_ptr + po[:, None] * DH + d[None, :], acc, mask=hmask[:, None] & dmask[None, :])
    if MERGE:  # the row's last chunk program to finish merges the row (no merge kernel)
        tl.debug_barrier()  # every thread's partial stores before the release below
        done = tl.atomic_add(ctr_ptr + bh, 1, sem="acq_rel")
        if done == NCH - 1:
            tl.debug_barrier()
            _merge_row(pm_ptr, pl_ptr, pacc_ptr, out_ptr, bh, NCH, G, DH, DHP, NCHP, MB)
            if ZERO_HIST:  # every chunk of the row has read the histogram: zero for next call
                tl.store(hist_ptr + bh * NB + tl.arange(0, NB), tl.zeros((NB,), tl.int32))
            tl.store(ctr_ptr + bh, 0)  # ready for the next call
    pdl_exit(PDL)


@triton.jit
def _merge_row(pm_ptr, pl_ptr, pacc_ptr, out_ptr, bh, NCH, G: tl.constexpr, DH: tl.constexpr,
               DHP: tl.constexpr, NCHP: tl.constexpr, MB: tl.constexpr):  # fmt: skip
    """Merge the ``NCH`` chunk partials of every query head of row ``bh`` (as
    ``_merge_kernel``, ``MB`` partials at a time; loads bypass L1: other programs wrote them)."""
    sp = tl.arange(0, NCHP)
    d = tl.arange(0, DHP)
    dmask = d < DH
    for h in tl.static_range(G):
        row = bh * G + h
        m = tl.load(pm_ptr + row * NCH + sp, mask=sp < NCH, other=float("-inf"),
                    cache_modifier=".cg")  # fmt: skip
        M = tl.max(m, axis=0)
        M = tl.where(float("-inf") == M, 0.0, M)
        y = tl.zeros((DHP,), tl.float32)
        L = tl.zeros((), tl.float32)
        for c0 in range(0, NCH, MB):
            j = c0 + tl.arange(0, MB)
            jm = j < NCH
            mj = tl.load(pm_ptr + row * NCH + j, mask=jm, other=float("-inf"),
                         cache_modifier=".cg")  # fmt: skip
            lj = tl.load(pl_ptr + row * NCH + j, mask=jm, other=0.0, cache_modifier=".cg")
            aj = tl.load(pacc_ptr + (row * NCH + j[:, None]) * DH + d[None, :],
                         mask=jm[:, None] & dmask[None, :], other=0.0,
                         cache_modifier=".cg")  # fmt: skip
            w = tl.where(jm, tl.exp(mj - M), 0.0)
            L += tl.sum(w * lj, axis=0)
            y += tl.sum(w[:, None] * aj, axis=0)
        y = tl.where(L > 0, y / tl.maximum(L, 1e-30), 0.0)
        tl.store(out_ptr + row * DH + d, y.to(out_ptr.dtype.element_ty), mask=dmask)


@triton.jit
def _hattend_split_kernel(
    q_ptr, k_ptr, v_ptr, lens_ptr, cnt_ptr, ckey_ptr, cpos_ptr, res_ptr, pm_ptr, pl_ptr,
    pacc_ptr, S, HKV, NCH, CPP, NSPLIT, scale, DH: tl.constexpr, DHP: tl.constexpr,
    G: tl.constexpr, GP: tl.constexpr, CAP: tl.constexpr, BK: tl.constexpr,
    F32DOT: tl.constexpr, PDL: tl.constexpr = False,
):  # fmt: skip
    """Lean attend kernel: program ``(row, split)`` walks the winners of ``CPP`` consecutive
    chunks (as much work per program as a step-2 split); rows the buckets did not resolve are
    left to :func:`_hmerge_kernel` (empty partials here)."""
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    sp = tl.program_id(1)
    seq_len = tl.load(lens_ptr + bh // HKV)
    T = tl.load(res_ptr + bh * 3)
    plim = tl.load(res_ptr + bh * 3 + 1)
    ok = tl.load(res_ptr + bh * 3 + 2)
    heads, hmask, d, dmask, q, m_i, l_i, acc = _group_q(q_ptr, bh, G, DH, GP, DHP)
    k_base = k_ptr + bh * S * DH
    v_base = v_ptr + bh * S * DH
    c_lo = sp * CPP
    c_hi = tl.where(ok != 0, tl.minimum(c_lo + CPP, NCH), c_lo)
    for c in range(c_lo, c_hi):
        n = tl.minimum(tl.load(cnt_ptr + bh * NCH + c), CAP)
        for b0 in range(0, n, BK):
            _, pos, sel = _block_winners(ckey_ptr, cpos_ptr, T, plim, bh, c, NCH, n, b0, CAP, BK)
            take = sel & (pos < seq_len)
            off = pos.to(tl.int64)[:, None] * DH + d[None, :]
            kvm = take[:, None] & dmask[None, :]
            kb = tl.load(k_base + off, mask=kvm, other=0.0)
            vb = tl.load(v_base + off, mask=kvm, other=0.0)
            m_i, l_i, acc = _online_step(q, kb, vb, take, m_i, l_i, acc, scale, F32DOT)
    po = bh * G * NSPLIT + heads * NSPLIT + sp
    tl.store(pm_ptr + po, m_i, mask=hmask)
    tl.store(pl_ptr + po, l_i, mask=hmask)
    tl.store(pacc_ptr + po[:, None] * DH + d[None, :], acc, mask=hmask[:, None] & dmask[None, :])
    pdl_exit(PDL)


@triton.jit
def _hmerge_kernel(
    pm_ptr, pl_ptr, pacc_ptr, q_ptr, k_ptr, v_ptr, logit_ptr, lens_ptr, stat_ptr, res_ptr,
    fidx_ptr, falpha_ptr, out_ptr, S, HKV, NSPLIT, K, window, sinks, scale, DH: tl.constexpr,
    DHP: tl.constexpr, G: tl.constexpr, GP: tl.constexpr, GS: tl.constexpr,
    NSP: tl.constexpr, BK: tl.constexpr, CHF: tl.constexpr, F32DOT: tl.constexpr,
    PDL: tl.constexpr = False,
):  # fmt: skip
    """Program ``b * Hq + h``: merges the splits of its query head (as ``_merge_kernel``); for a
    row the buckets did not resolve, the group's head-0 program selects the row exactly and
    attends its ``k`` winners for all ``G`` heads instead (rare)."""
    pdl_enter(PDL)
    row = tl.program_id(0).to(tl.int64)
    bh = row // G
    h = row % G
    d = tl.arange(0, DHP)
    dmask = d < DH
    if tl.load(res_ptr + bh * 3 + 2) != 0:
        sp = tl.arange(0, NSP)
        smask = sp < NSPLIT
        m = tl.load(pm_ptr + row * NSPLIT + sp, mask=smask, other=float("-inf"))
        l = tl.load(pl_ptr + row * NSPLIT + sp, mask=smask, other=0.0)
        a = tl.load(pacc_ptr + (row * NSPLIT + sp[:, None]) * DH + d[None, :],
                    mask=smask[:, None] & dmask[None, :], other=0.0)  # fmt: skip
        M = tl.max(m, axis=0)
        M = tl.where(float("-inf") == M, 0.0, M)
        w = tl.where(smask, tl.exp(m - M), 0.0)
        L = tl.sum(w * l, axis=0)
        y = tl.sum(w[:, None] * a, axis=0)
        y = tl.where(L > 0, y / tl.maximum(L, 1e-30), 0.0)
        tl.store(out_ptr + row * DH + d, y.to(out_ptr.dtype.element_ty), mask=dmask)
    elif h == 0:
        seq_len = tl.load(lens_ptr + bh // HKV)
        hs = tl.arange(0, GS)
        M = tl.load(stat_ptr + bh * 2 * GS + hs)
        inv_z = tl.load(stat_ptr + bh * 2 * GS + GS + hs)
        _exact_row_fallback(
            logit_ptr + bh * G * S, fidx_ptr + bh * K, falpha_ptr, bh, hs, M, inv_z, seq_len, S,
            K, window, sinks, G, GS, CHF,
        )  # fmt: skip
        tl.debug_barrier()  # the index row is read back by other threads of this program
        heads, hmask, d, dmask, q, m_i, l_i, acc = _group_q(q_ptr, bh, G, DH, GP, DHP)
        for b0 in range(0, K, BK):
            j = b0 + tl.arange(0, BK)
            jm = j < K
            pos = tl.load(fidx_ptr + bh * K + j, mask=jm, other=0)
            take = jm & (pos < seq_len)
            off = pos.to(tl.int64)[:, None] * DH + d[None, :]
            kvm = take[:, None] & dmask[None, :]
            kb = tl.load(k_ptr + bh * S * DH + off, mask=kvm, other=0.0)
            vb = tl.load(v_ptr + bh * S * DH + off, mask=kvm, other=0.0)
            m_i, l_i, acc = _online_step(q, kb, vb, take, m_i, l_i, acc, scale, F32DOT)
        y = tl.where(l_i[:, None] > 0, acc / tl.maximum(l_i, 1e-30)[:, None], 0.0)
        tl.store(out_ptr + (bh * G + heads[:, None]) * DH + d[None, :],
                 y.to(out_ptr.dtype.element_ty), mask=hmask[:, None] & dmask[None, :])  # fmt: skip
    pdl_exit(PDL)


_COUNTERS: dict[tuple, torch.Tensor] = {}


def _counters(rows: int, dev: torch.device, width: int = 0) -> torch.Tensor:
    """Zeroed int32 per-row counters of the in-kernel merge (``width`` 0) or histograms
    (``(rows, width)``), kept per size and device (the kernel leaves them at zero); not kept
    when made inside a CUDA-graph capture."""
    key = (rows, width, str(dev))
    t = _COUNTERS.get(key)
    if t is None:
        t = torch.zeros((rows, width) if width else (rows,), device=dev, dtype=torch.int32)
        if not (t.is_cuda and torch.cuda.is_current_stream_capturing()):
            _COUNTERS[key] = t
    return t


def hist_attention(
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    logits: torch.Tensor,
    tile_max: torch.Tensor,
    tile_sum: torch.Tensor,
    seq_lens: torch.Tensor,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
    scale: float | None = None,
    *,
    fused_resolve: bool = False,
    merge: bool = False,
    thr_in_cand: bool = False,
    splits: int | None = None,
    block: int = 64,
    attend_warps: int = 4,
    num_stages: int = 2,
    _probe: dict | None = None,
    **select_kw,
) -> torch.Tensor:
    """Top-k selection (histogram) and exact attention over the winners, chunk by chunk.

    Args:
        q: ``(B, Hq, 1, dh)`` bf16/fp16 query; ``K``, ``V``: ``(B, Hkv, S, dh)`` caches.
        logits, tile_max, tile_sum: step 1's outputs (:func:`sparq.kernels.approx_logits`):
            ``(B, Hkv, G, S)`` fp32 approximate logits and ``(B, Hkv, G, NT)`` tile statistics.
        seq_lens: ``(B,)`` int64 live lengths; ``k``: positions attended (window and sinks
            count towards it); ``local_window``, ``sink_tokens``: always-selected positions.
        scale: exact-softmax scale (default ``dh ** -0.5``).
        fused_resolve: every chunk program resolves its row's threshold itself (one launch
            fewer; not with ``no_lists``, whose resolve kernel gathers the bucket).
        merge: the last chunk program of a row to finish merges the row's partials (an atomic
            counter per row, left at zero for the next call; no merge kernel). Calls of the same
            row count on one device share the counters: do not run two at once on different
            streams.
        thr_in_cand: (with ``merge`` and ``fused_resolve``) no threshold kernel: every
            candidate program derives its row's thresholds itself, on a kept histogram that the
            row's merging program zeroes again (suits rows x chunks within one wave, e.g. B=1).
        splits: the lean layout: ``splits`` programs per row, each walking the winners of
            ``ceil(chunks / splits)`` consecutive chunks (as much work per program as a step-2
            split; the exact fallback moves to the merge kernel). Not with ``fused_resolve``,
            ``merge`` or ``thr_in_cand``.
        block, attend_warps, num_stages: launch of the attend kernel (candidate slots per step,
            warps, pipeline stages; ``num_warps`` in ``select_kw`` is the selection's).
        select_kw: launch options of :func:`select_topk_hist` (``chunk``, ``samples``,
            ``thr_warps``, ``lean``, ``fast_cand``, ``sort_search``, ``no_lists``, ...).

    Returns:
        ``(B, Hq, 1, dh)`` in ``q.dtype``: the same as ``sparse_attention`` over
        ``select_topk_hist``'s indices (paper Alg. 1 without reallocation), up to the summation
        order.
    """
    B, Hq, _, dh = q.shape
    Hkv, S = K.shape[1], K.shape[2]
    G = Hq // Hkv
    fused_resolve = fused_resolve or bool(select_kw.pop("fuse_resolve", False))
    if fused_resolve and select_kw.get("no_lists"):
        raise ValueError("fused_resolve=True needs the bucket lists: pass no_lists=False")
    if select_kw.pop("need_alpha", False):
        raise ValueError("hist_attention does not sum alpha: use select_topk_hist for realloc")
    if thr_in_cand and not (merge and fused_resolve):
        raise ValueError("thr_in_cand=True needs merge=True and fused_resolve=True")
    if splits is not None and (fused_resolve or merge or thr_in_cand):
        raise ValueError("splits needs fused_resolve=False, merge=False, thr_in_cand=False")
    scale = float(scale) if scale is not None else dh**-0.5
    buf: dict = {}
    hist = None
    if thr_in_cand:
        nb = hist_plan(S, min(k, S), select_kw.get("chunk"), select_kw.get("samples"))["NB"]
        hist = _counters(B * Hkv, q.device, nb)
    select_topk_hist(
        logits, tile_max, tile_sum, seq_lens, k, local_window, sink_tokens, need_alpha=False,
        _stop_after=2 if fused_resolve else 3, _buffers=buf, _hist=hist, **select_kw,
    )  # fmt: skip
    rows, nch, dev = B * Hkv, buf["nch"], q.device
    fidx = torch.empty(rows, k, device=dev, dtype=torch.int32)  # exact fallback rows only
    falpha = torch.empty(rows, G, device=dev, dtype=torch.float32)
    pm = torch.empty(B, Hq, nch, device=dev, dtype=torch.float32)
    pl = torch.empty_like(pm)
    pacc = torch.empty(B, Hq, nch, dh, device=dev, dtype=torch.float32)
    out = torch.empty(B, Hq, 1, dh, device=dev, dtype=q.dtype)
    if splits is not None:
        cpp = triton.cdiv(nch, max(1, min(int(splits), nch)))
        ns = triton.cdiv(nch, cpp)
        pm = torch.empty(B, Hq, ns, device=dev, dtype=torch.float32)
        pl = torch.empty_like(pm)
        pacc = torch.empty(B, Hq, ns, dh, device=dev, dtype=torch.float32)
        dhp, gp = triton.next_power_of_2(dh), max(16, triton.next_power_of_2(G))
        _hattend_split_kernel[(rows, ns)](
            q.contiguous(), K, V, seq_lens, buf["cnt"], buf["ckey"], buf["cpos"], buf["res"], pm,
            pl, pacc, S, Hkv, nch, cpp, ns, scale, DH=dh, DHP=dhp, G=G, GP=gp, CAP=buf["cap"],
            BK=block, F32DOT=F32DOT, num_warps=attend_warps, num_stages=num_stages, **pdl_kw(),
        )  # fmt: skip
        _hmerge_kernel[(B * Hq,)](
            pm, pl, pacc, q.contiguous(), K, V, logits, seq_lens, buf["stat"], buf["res"], fidx,
            falpha, out, S, Hkv, ns, k, local_window, sink_tokens, scale, DH=dh, DHP=dhp, G=G,
            GP=gp, GS=buf["GP"], NSP=max(2, triton.next_power_of_2(ns)), BK=64,
            CHF=min(128, max(16, triton.next_power_of_2(S))), F32DOT=F32DOT, num_warps=4,
            **pdl_kw(),
        )  # fmt: skip
        if _probe is not None:
            _probe["ok"] = buf["res"][:, 2] != 0
        return out
    ctr = _counters(rows, dev) if merge else pm
    _hattend_kernel[(rows, nch)](
        q.contiguous(), K, V, logits, seq_lens, buf["stat"], buf["cnt"], buf["ckey"],
        buf["cpos"], buf["res"], buf["hist"], buf["blist"], fidx, falpha, pm, pl, pacc, S, Hkv,
        nch, k, local_window, sink_tokens, scale, DH=dh, DHP=triton.next_power_of_2(dh), G=G,
        GP=max(16, triton.next_power_of_2(G)), GS=buf["GP"], NCHP=buf["nchp"], CAP=buf["cap"],
        NB=buf["nb"], BCAP=BCAP, BK=block, CHF=min(128, max(16, triton.next_power_of_2(S))),
        FUSED=fused_resolve, F32DOT=F32DOT, num_warps=attend_warps, num_stages=num_stages,
        ctr_ptr=ctr, out_ptr=out, MERGE=merge, ZERO_HIST=thr_in_cand, **pdl_kw(),
    )  # fmt: skip
    if not merge:
        _merge_kernel[(B * Hq,)](
            pm, pl, pacc, pm, pm, out, nch, G=G, DH=dh, DHP=triton.next_power_of_2(dh),
            NSP=max(2, triton.next_power_of_2(nch)), REALLOC=False, num_warps=4, **pdl_kw(),
        )  # fmt: skip
    if _probe is not None and not fused_resolve:
        _probe["ok"] = buf["res"][:, 2] != 0
    return out
