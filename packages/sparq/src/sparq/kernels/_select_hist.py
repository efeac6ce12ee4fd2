"""Exact top-k selection spread over many programs per row: sampled threshold + bucket histogram.

Same contract and result as :func:`sparq.kernels.select_topk` (paper Alg. 1, step 2 index
choice), built for few (batch, KV head) rows with long sequences (``B * Hkv`` far below the number
of multiprocessors, e.g. B=1, Hkv=8, S=128k), where any kernel with one program per row leaves
most of the GPU idle. Only two tiny kernels work per row; the passes over the row run on
``rows x chunks`` programs:

1. ``_hthr_kernel`` (one program per row): global softmax statistics per query head, and from a
   sample of the keys two thresholds: ``T0`` (sample rank ``~1.75*k*SAMP/S``, expected to leave
   ~1.75 k candidates) and ``Tq`` (rank ``RANK/3.5`` among the unforced keys). The bucket shift
   ``SH`` maps ``[T0, Tq]`` linearly (on the order-preserving int32 images of the keys) onto the
   lower half of ``NB`` buckets: ``bucket(u) = min((u - T0) >> SH, NB - 1)``. Zeroes the row's
   histogram.
2. ``_hcand_kernel`` (rows x chunks): one read of the approximate logits; keys ``>= T0`` are
   compacted, in position order, into ``CAP`` slots per chunk, counted into the row's bucket
   histogram (atomics), and appended (as slot offsets) to a short list per bucket (``BCAP``
   entries).
3. ``_hresolve_kernel`` (one program per row): the bucket ``b*`` holding the k-th key from the
   histogram, then the exact k-th key ``T`` among the <= ``BCAP`` stored keys of that bucket and
   ``P_lim``, the position of the last tied key still taken (ties go to the
   lowest positions, as the reference's stable sort). A position is selected iff
   ``key > T or (key == T and pos <= P_lim)``.
4. ``_hcount_kernel`` (rows x chunks): the number of winners (and their softmax mass per head) in
   each chunk's slots.
5. ``_hemit_kernel`` (rows x chunks): each chunk writes its winners at the prefix sum of the
   earlier chunks' counts, so the indices come out in increasing position order. When the sample
   misjudged (fewer than k candidates, a full chunk, an overfull bucket) the chunk-0 program
   selects the row exactly by a radix-16 search over the whole row instead, so the answer never
   depends on the sample.

No host synchronisation: CUDA-graph capturable. Scratch per row: ``NB*(1+BCAP)`` words for the
histogram and bucket lists plus ``NCH*CAP*(2+G)`` words of candidate slots.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._common import l2_hints, pdl_enter, pdl_exit, pdl_kw
from ._search import _rank_threshold16x2, _rank_threshold_h256
from ._select import _global_stats, _keys
from ._select_sample import (
    MARGIN,
    _compact_candidates,
    _exact_row_fallback,
    _keys_interior,
    _keys_lean,
    _positions,
    _rank_threshold16,
    _store_compacted,
)

__all__ = ["hist_plan", "hist_supported", "select_topk_hist"]

BCAP = 32  # keys kept per bucket list (the bucket of the k-th key must fit; ~5 expected)
MAX_NB = 16384  # largest histogram (one register block in the resolve kernel)


@triton.jit
def _bucket(u, t0, sh, NB: tl.constexpr):
    """Bucket of ordered keys ``u >= t0`` (int32): ``min((u - t0) >> sh, NB - 1)``."""
    d = (u.to(tl.int64) - t0.to(tl.int64)) >> sh
    return tl.minimum(d, NB - 1).to(tl.int32)


@triton.jit
def _row_thresholds(
    logit_ptr, m_ptr, l_ptr, stat_ptr, thr_ptr, bh, seq_len, S, NT, window, sinks, RANK, RANKQ,
    G: tl.constexpr, GP: tl.constexpr, NTP: tl.constexpr, SAMP: tl.constexpr,
    RUN: tl.constexpr, NB: tl.constexpr, THR_H: tl.constexpr, THR_SORT: tl.constexpr,
):  # fmt: skip
    """Step 1 of the selection for row ``bh``: the global softmax statistics (stored at
    ``stat_ptr``), the sample thresholds ``T0``/``Tq`` and the bucket shift (stored at
    ``thr_ptr``). Deterministic: every program that runs it for a row gets the same values."""
    heads = tl.arange(0, GP)
    M, inv_z = _global_stats(m_ptr, l_ptr, bh, NT, G, GP, NTP)
    tl.store(stat_ptr + bh * 2 * GP + heads, M)
    tl.store(stat_ptr + bh * 2 * GP + GP + heads, inv_z)
    n = tl.arange(0, SAMP)
    cols = (((n // RUN).to(tl.int64) * S) // (SAMP // RUN) + (n % RUN)).to(tl.int32)
    u = _keys(logit_ptr + bh * G * S, cols, heads, M, inv_z, seq_len, S, window, sinks, G)
    # T0 over all sample keys, Tq among the unforced ones (forced keys are +inf: 0x7F800000)
    if THR_SORT:  # one sort: T0 and Tq are read off at their ranks (forced keys sort first)
        srt = tl.sort(u, descending=True)
        i = tl.arange(0, SAMP)
        t0 = tl.max(tl.where(i == RANK - 1, srt, -2147483648), axis=0)
        iq = tl.sum((u == 2139095040).to(tl.int32), axis=0) + RANKQ - 1
        tq = tl.max(tl.where(i == iq, srt, -2147483648), axis=0)  # INT_MIN past the end
    elif THR_H:  # two searches by radix-256 histograms
        t0 = _rank_threshold_h256(u, RANK)
        tq = _rank_threshold_h256(tl.where(u == 2139095040, -2147483648, u), RANKQ)
    else:
        t0, tq = _rank_threshold16x2(u, RANK, tl.where(u == 2139095040, -2147483648, u), RANKQ)
    diff = tl.maximum(tq.to(tl.int64) - t0.to(tl.int64), 0)
    sh = tl.zeros((), tl.int32)
    for s in tl.static_range(33):  # smallest shift putting [T0, Tq] below bucket NB/2
        sh += ((diff >> s) >= NB // 2).to(tl.int32)
    tl.store(thr_ptr + bh * 2, t0)
    tl.store(thr_ptr + bh * 2 + 1, sh)


@triton.jit
def _hthr_kernel(
    logit_ptr, m_ptr, l_ptr, lens_ptr, stat_ptr, thr_ptr, hist_ptr, S, NT, HKV, window, sinks,
    RANK, RANKQ, G: tl.constexpr, GP: tl.constexpr, NTP: tl.constexpr, SAMP: tl.constexpr,
    RUN: tl.constexpr, NB: tl.constexpr, THR_H: tl.constexpr, lb_ptr, LBW: tl.constexpr,
    PDL: tl.constexpr = False, THR_SORT: tl.constexpr = False, gc_ptr=None,
    GC: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    seq_len = tl.load(lens_ptr + bh // HKV)
    _row_thresholds(
        logit_ptr, m_ptr, l_ptr, stat_ptr, thr_ptr, bh, seq_len, S, NT, window, sinks, RANK,
        RANKQ, G, GP, NTP, SAMP, RUN, NB, THR_H, THR_SORT,
    )  # fmt: skip
    tl.store(hist_ptr + bh * NB + tl.arange(0, NB), tl.zeros((NB,), tl.int32))
    if GC:  # the bucket-gather counter of the resolve kernel (no_lists=2)
        tl.store(gc_ptr + bh, 0)
    if LBW > 0:  # look-back words and ticket of the merged count/emit kernel
        tl.store(lb_ptr + bh * LBW + tl.arange(0, LBW), tl.zeros((LBW,), tl.int32))
    pdl_exit(PDL)


@triton.jit
def _hcand_fast(
    logit_ptr, stat_ptr, cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, hist_ptr, blist_ptr, bh, c, cols,
    heads, M, inv_z, seq_len, S, NCH, window, sinks, t0, sh, G: tl.constexpr, GP: tl.constexpr,
    CH: tl.constexpr, CAP: tl.constexpr, NB: tl.constexpr, BCAP: tl.constexpr,
    ALPHA: tl.constexpr, LEAN: tl.constexpr, HINT: tl.constexpr, HB: tl.constexpr,
    NOLIST: tl.constexpr = False,
):  # fmt: skip
    """The candidate pass with fewer instructions per position (same result): chunks whose
    positions are all live and unforced compute their keys without masks, and the histogram
    and bucket lists are filled from the compacted candidates read back (``HB`` at a time,
    ~1.75 k * CH / S per chunk) instead of from every position of the chunk."""
    row = logit_ptr + bh * G * S
    stat_row = stat_ptr + bh * 2 * GP
    lo = c * CH
    interior = (lo >= sinks) & (lo + CH <= seq_len - window) & (lo + CH <= S)
    if interior:
        u, lg0 = _keys_interior(row, cols, stat_row, S, G, GP, HINT)
        _, _, keep, n = _store_compacted(
            u, lg0, t0, cols, row, heads, M, inv_z, stat_row, S, bh, c, NCH,
            cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, G, GP, CAP, ALPHA, True,
        )  # fmt: skip
    else:
        _, _, _, keep = _compact_candidates(
            row, cols, heads, M, inv_z, stat_row, seq_len, S, window, sinks, t0, bh, c, NCH,
            cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, G, GP, CAP, ALPHA, LEAN, HINT,
        )  # fmt: skip
        n = tl.sum(keep.to(tl.int32), axis=0)
    # the chunk's kept candidates, read back (this program's own stores: after the barrier
    # they are visible to all its threads)
    nk = tl.minimum(n, CAP)
    tl.debug_barrier()
    ntop = tl.zeros((), tl.int32)
    for b0 in range(0, nk, HB):
        jj = b0 + tl.arange(0, HB)
        m = jj < nk
        uu = tl.load(ckey_ptr + (bh * NCH + c) * CAP + jj, mask=m, other=-2147483648)
        bkt = _bucket(uu, t0, sh, NB)
        low = m & (bkt < NB - 1)
        if NOLIST:  # counts only (no returned value: fire-and-forget reductions)
            tl.atomic_add(
                hist_ptr + bh * NB + bkt, tl.full(bkt.shape, 1, tl.int32), mask=low, sem="relaxed"
            )
        else:
            j = tl.atomic_add(
                hist_ptr + bh * NB + bkt, tl.full(bkt.shape, 1, tl.int32), mask=low, sem="relaxed"
            )
            tl.store(blist_ptr + (bh * NB + bkt) * BCAP + j, c * CAP + jj, mask=low & (j < BCAP))
        ntop += tl.sum((m & (bkt >= NB - 1)).to(tl.int32), axis=0)
    tl.atomic_add(hist_ptr + bh * NB + NB - 1, ntop, sem="relaxed")


@triton.jit
def _hcand_kernel(
    logit_ptr, lens_ptr, stat_ptr, thr_ptr, cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, hist_ptr,
    blist_ptr, S, HKV, NCH, window, sinks, G: tl.constexpr, GP: tl.constexpr, CH: tl.constexpr,
    CAP: tl.constexpr, NB: tl.constexpr, BCAP: tl.constexpr, ALPHA: tl.constexpr,
    LEAN: tl.constexpr,
    PDL: tl.constexpr = False, L2: tl.constexpr = False, DIAG: tl.constexpr = 0,
    CM: tl.constexpr = False, FAST: tl.constexpr = False, HB: tl.constexpr = 128,
    NOLIST: tl.constexpr = False, tm_ptr=None, ts_ptr=None, NT=1, RANK=1, RANKQ=1,
    THR_IN: tl.constexpr = False, NTP: tl.constexpr = 2, SAMP: tl.constexpr = 16,
    RUN: tl.constexpr = 1, THR_H: tl.constexpr = False, THR_SORT: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    if CM:  # chunk-major grid (NCH, rows): consecutive programs read neighbouring chunks
        bh = tl.program_id(1).to(tl.int64)
        c = tl.program_id(0)
    else:
        bh = tl.program_id(0).to(tl.int64)
        c = tl.program_id(1)
    seq_len = tl.load(lens_ptr + bh // HKV)
    if THR_IN:  # no threshold kernel: every chunk derives its row's thresholds itself (the
        # same values in every program; each stores them, then reads them back below)
        _row_thresholds(
            logit_ptr, tm_ptr, ts_ptr, stat_ptr, thr_ptr, bh, seq_len, S, NT, window, sinks,
            RANK, RANKQ, G, GP, NTP, SAMP, RUN, NB, THR_H, THR_SORT,
        )  # fmt: skip
        tl.debug_barrier()
    heads = tl.arange(0, GP)
    M = tl.load(stat_ptr + bh * 2 * GP + heads)
    inv_z = tl.load(stat_ptr + bh * 2 * GP + GP + heads)
    t0 = tl.load(thr_ptr + bh * 2)
    sh = tl.load(thr_ptr + bh * 2 + 1).to(tl.int64)
    cols = c * CH + _positions(CH, seq_len, LEAN)
    if DIAG >= 2:  # profiling only: the logits read (3; 4 vectorised) or the keys (2), then
        # the count alone
        if DIAG >= 3:
            if DIAG == 4:
                cols = c * CH + tl.arange(0, CH)
            x = tl.zeros((CH,), tl.float32)
            for h in tl.static_range(G):
                x += tl.load(logit_ptr + bh * G * S + h * S + cols, mask=cols < seq_len, other=0.0)
            n = tl.sum((x > 0).to(tl.int32), axis=0)
        else:
            u, _ = _keys_lean(logit_ptr + bh * G * S, cols, stat_ptr + bh * 2 * GP, seq_len, S,
                              window, sinks, G, GP)  # fmt: skip
            n = tl.sum((u >= t0).to(tl.int32), axis=0)
        tl.store(cnt_ptr + bh * NCH + c, n)
    elif FAST:
        _hcand_fast(
            logit_ptr, stat_ptr, cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, hist_ptr, blist_ptr, bh,
            c, cols, heads, M, inv_z, seq_len, S, NCH, window, sinks, t0, sh, G, GP, CH, CAP,
            NB, BCAP, ALPHA, LEAN, 1 if L2 else 0, HB, NOLIST,
        )  # fmt: skip
    else:
        u, cand, rank, _ = _compact_candidates(
            logit_ptr + bh * G * S, cols, heads, M, inv_z, stat_ptr + bh * 2 * GP, seq_len, S,
            window, sinks, t0, bh, c, NCH, cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, G, GP, CAP,
            ALPHA, LEAN, 1 if L2 else 0,
        )  # fmt: skip
        if DIAG == 0:  # DIAG 1 (profiling only): no histogram
            # histogram: the (wide, clamped) top bucket by one reduced atomic, the others per key
            bkt = _bucket(u, t0, sh, NB)
            low = cand & (bkt < NB - 1)
            j = tl.atomic_add(
                hist_ptr + bh * NB + bkt, tl.full(bkt.shape, 1, tl.int32), mask=low,
                sem="relaxed",
            )  # fmt: skip
            # the list holds row-relative slot offsets: the resolve reads the very keys stored
            # above (never recomputed, so no rounding difference between kernels can break the
            # count)
            tl.store(blist_ptr + (bh * NB + bkt) * BCAP + j, c * CAP + rank,
                     mask=low & (j < BCAP))  # fmt: skip
            ntop = tl.sum((cand & (bkt >= NB - 1)).to(tl.int32), axis=0)
            tl.atomic_add(hist_ptr + bh * NB + NB - 1, ntop, sem="relaxed")
    pdl_exit(PDL)


@triton.jit
def _resolve_row(
    cnt_ptr, hist_ptr, blist_ptr, ckey_ptr, cpos_ptr, bh, NCH, K, NCHP: tl.constexpr,
    CAP: tl.constexpr, NB: tl.constexpr, BCAP: tl.constexpr,
):  # fmt: skip
    """``(T, P_lim, ok)`` of row ``bh`` from its histogram and bucket lists (see step 3)."""
    ch = tl.arange(0, NCHP)
    cnt = tl.load(cnt_ptr + bh * NCH + ch, mask=ch < NCH, other=0)
    b = tl.arange(0, NB)
    h = tl.load(hist_ptr + bh * NB + b)
    total = tl.sum(h, axis=0)
    incl = total - (tl.cumsum(h, axis=0) - h)  # keys in buckets >= b
    bstar = tl.max(tl.where(incl >= K, b, -1), axis=0)
    m = tl.sum(tl.where(b == bstar, h, 0), axis=0)
    above = tl.sum(tl.where(b > bstar, h, 0), axis=0)
    need_b = K - above
    ok = (bstar >= 0) & (bstar < NB - 1) & (m <= BCAP) & (tl.max(cnt, axis=0) <= CAP)
    # the k-th key is the need_b-th largest of bucket b*'s (at most BCAP) keys
    jj = tl.arange(0, BCAP)
    lmask = jj < tl.where(ok, m, 0)
    lslot = tl.load(blist_ptr + (bh * NB + tl.maximum(bstar, 0)) * BCAP + jj, mask=lmask,
                    other=0)  # fmt: skip
    lkey = tl.load(ckey_ptr + bh * NCH * CAP + lslot, mask=lmask, other=-2147483648)
    lpos = tl.load(cpos_ptr + bh * NCH * CAP + lslot, mask=lmask, other=0)
    T = _rank_threshold16(lkey, tl.maximum(need_b, 1))
    need_eq = need_b - tl.sum((lkey > T).to(tl.int32), axis=0)
    eq = lmask & (lkey == T)
    # tied keys go to the lowest positions: rank each tie among the ties by position
    before = eq[None, :] & (lpos[None, :] < lpos[:, None])
    tie_rank = tl.sum(before.to(tl.int32), axis=1)
    plim = tl.max(tl.where(eq & (tie_rank < need_eq), lpos, -1), axis=0)
    return T, plim, ok.to(tl.int32)


@triton.jit
def _gather_bucket(cnt_ptr, hist_ptr, blist_ptr, ckey_ptr, thr_ptr, bh, NCH,
                   K, NCHP: tl.constexpr, CAP: tl.constexpr, NB: tl.constexpr,
                   BCAP: tl.constexpr, SB: tl.constexpr, gc_ptr=None,
                   ATOMIC: tl.constexpr = False):  # fmt: skip
    """Without bucket lists from the candidate pass (``nolist``): the slot offsets of the keys
    in the bucket of the k-th key, gathered in slot order from the row's compacted candidates
    into that bucket's list (the histogram already holds their number)."""
    ch = tl.arange(0, NCHP)
    cnt = tl.minimum(tl.load(cnt_ptr + bh * NCH + ch, mask=ch < NCH, other=0), CAP)
    b = tl.arange(0, NB)
    h = tl.load(hist_ptr + bh * NB + b)
    total = tl.sum(h, axis=0)
    incl = total - (tl.cumsum(h, axis=0) - h)
    bstar = tl.max(tl.where(incl >= K, b, -1), axis=0)
    t0 = tl.load(thr_ptr + bh * 2)
    sh = tl.load(thr_ptr + bh * 2 + 1).to(tl.int64)
    n_in = tl.zeros((), tl.int32)
    for s0 in range(0, tl.max(cnt, axis=0), SB):
        jj = s0 + tl.arange(0, SB)
        live = jj[None, :] < cnt[:, None]
        slot = ch[:, None] * CAP + jj[None, :]
        u = tl.load(ckey_ptr + bh * NCH * CAP + slot, mask=live, other=-2147483648)
        hit = live & (u >= t0) & (_bucket(u, t0, sh, NB) == bstar)
        if ATOMIC:  # a handful of hits per row: one counter atomic each, no scan
            r = tl.atomic_add(gc_ptr + bh + tl.zeros_like(slot), 1, mask=hit, sem="relaxed")
            tl.store(blist_ptr + (bh * NB + tl.maximum(bstar, 0)) * BCAP + r, slot,
                     mask=hit & (r < BCAP))  # fmt: skip
        else:
            f = tl.reshape(hit.to(tl.int32), (NCHP * SB,))
            r = tl.cumsum(f, axis=0) - f + n_in
            tl.store(blist_ptr + (bh * NB + tl.maximum(bstar, 0)) * BCAP + r,
                     tl.reshape(slot, (NCHP * SB,)), mask=(f > 0) & (r < BCAP))  # fmt: skip
            n_in += tl.sum(f, axis=0)
    tl.debug_barrier()  # the list is read back by other threads of this program


@triton.jit
def _hresolve_kernel(
    cnt_ptr, hist_ptr, blist_ptr, ckey_ptr, cpos_ptr, res_ptr, NCH, K, NCHP: tl.constexpr,
    CAP: tl.constexpr, NB: tl.constexpr, BCAP: tl.constexpr,
    PDL: tl.constexpr = False, NOLIST: tl.constexpr = 0, thr_ptr=None, SB: tl.constexpr = 64,
    gc_ptr=None,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    if NOLIST:
        _gather_bucket(cnt_ptr, hist_ptr, blist_ptr, ckey_ptr, thr_ptr, bh, NCH, K, NCHP, CAP, NB,
                       BCAP, SB, gc_ptr, NOLIST == 2)  # fmt: skip
    T, plim, ok = _resolve_row(
        cnt_ptr, hist_ptr, blist_ptr, ckey_ptr, cpos_ptr, bh, NCH, K, NCHP, CAP, NB, BCAP
    )
    tl.store(res_ptr + bh * 3, T)
    tl.store(res_ptr + bh * 3 + 1, plim)
    tl.store(res_ptr + bh * 3 + 2, ok)
    pdl_exit(PDL)


@triton.jit
def _chunk_winners(
    cnt_ptr, ckey_ptr, cpos_ptr, T, plim, bh, c, NCH, CAP: tl.constexpr, LEAN: tl.constexpr
):  # fmt: skip
    """Slot offsets of chunk ``c`` of row ``bh`` and the mask of its winners."""
    j = _positions(CAP, c, LEAN)
    live = j < tl.load(cnt_ptr + bh * NCH + c)
    slot = (bh * NCH + c) * CAP + j
    u = tl.load(ckey_ptr + slot, mask=live, other=-2147483648)
    pos = tl.load(cpos_ptr + slot, mask=live, other=0)
    sel = live & ((u > T) | ((u == T) & (pos <= plim)))
    return j, pos, sel


@triton.jit
def _block_winners(ckey_ptr, cpos_ptr, T, plim, bh, c, NCH, n, b0, CAP: tl.constexpr,
                   HB: tl.constexpr):  # fmt: skip
    """Slots ``b0 .. b0 + HB`` of chunk ``c`` (``n`` live): offsets, positions, winner mask."""
    j = b0 + tl.arange(0, HB)
    live = j < n
    slot = (bh * NCH + c) * CAP + j
    u = tl.load(ckey_ptr + slot, mask=live, other=-2147483648)
    pos = tl.load(cpos_ptr + slot, mask=live, other=0)
    return j, pos, live & ((u > T) | ((u == T) & (pos <= plim)))


@triton.jit
def _hcount_kernel(
    cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, res_ptr, wcnt_ptr, palpha_ptr, hist_ptr, blist_ptr, NCH,
    K, G: tl.constexpr, GP: tl.constexpr, NCHP: tl.constexpr, CAP: tl.constexpr,
    NB: tl.constexpr, BCAP: tl.constexpr, ALPHA: tl.constexpr, FUSED: tl.constexpr,
    LEAN: tl.constexpr,
    PDL: tl.constexpr = False, HB: tl.constexpr = 0,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1)
    if FUSED:  # every chunk resolves its row itself (one launch less); chunk 0 records it
        T, plim, ok = _resolve_row(
            cnt_ptr, hist_ptr, blist_ptr, ckey_ptr, cpos_ptr, bh, NCH, K, NCHP, CAP, NB, BCAP
        )
        if c == 0:
            tl.store(res_ptr + bh * 3, T)
            tl.store(res_ptr + bh * 3 + 1, plim)
            tl.store(res_ptr + bh * 3 + 2, ok)
    else:
        T = tl.load(res_ptr + bh * 3)
        plim = tl.load(res_ptr + bh * 3 + 1)
        ok = tl.load(res_ptr + bh * 3 + 2)
    if HB > 0:  # only the live slots, HB at a time
        if ok != 0:
            n = tl.minimum(tl.load(cnt_ptr + bh * NCH + c), CAP)
            w = tl.zeros((), tl.int32)
            heads = tl.arange(0, GP)
            pa = tl.zeros((GP,), tl.float32)
            for b0 in range(0, n, HB):
                j, _, sel = _block_winners(ckey_ptr, cpos_ptr, T, plim, bh, c, NCH, n, b0, CAP,
                                           HB)  # fmt: skip
                w += tl.sum(sel.to(tl.int32), axis=0)
                if ALPHA:
                    for h in tl.static_range(G):
                        p = tl.load(cp_ptr + (bh * G + h) * NCH * CAP + c * CAP + j, mask=sel,
                                    other=0.0)  # fmt: skip
                        pa += tl.where(heads == h, tl.sum(p, axis=0), 0.0)
            tl.store(wcnt_ptr + bh * NCH + c, w)
            if ALPHA:
                tl.store(palpha_ptr + (bh * NCH + c) * GP + heads, pa)
    elif ok != 0:
        j, _, sel = _chunk_winners(cnt_ptr, ckey_ptr, cpos_ptr, T, plim, bh, c, NCH, CAP, LEAN)
        tl.store(wcnt_ptr + bh * NCH + c, tl.sum(sel.to(tl.int32), axis=0))
        if ALPHA:
            heads = tl.arange(0, GP)
            pa = tl.zeros((GP,), tl.float32)
            for h in tl.static_range(G):
                p = tl.load(cp_ptr + (bh * G + h) * NCH * CAP + c * CAP + j, mask=sel, other=0.0)
                pa += tl.where(heads == h, tl.sum(p, axis=0), 0.0)
            tl.store(palpha_ptr + (bh * NCH + c) * GP + heads, pa)
    pdl_exit(PDL)


@triton.jit
def _hemit_kernel(
    logit_ptr, lens_ptr, stat_ptr, cnt_ptr, ckey_ptr, cpos_ptr, res_ptr, wcnt_ptr, palpha_ptr,
    out_idx_ptr, alpha_ptr, S, HKV, NCH, K, window, sinks, G: tl.constexpr, GP: tl.constexpr,
    NCHP: tl.constexpr, CAP: tl.constexpr, CHF: tl.constexpr, ALPHA: tl.constexpr,
    LEAN: tl.constexpr,
    PDL: tl.constexpr = False, HB: tl.constexpr = 0,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1)
    heads = tl.arange(0, GP)
    out_row = out_idx_ptr + bh * K
    if tl.load(res_ptr + bh * 3 + 2) != 0:
        ch = tl.arange(0, NCHP)
        w = tl.load(wcnt_ptr + bh * NCH + ch, mask=ch < c, other=0)
        base = tl.sum(w, axis=0)
        T = tl.load(res_ptr + bh * 3)
        plim = tl.load(res_ptr + bh * 3 + 1)
        if HB > 0:  # only the live slots, HB at a time
            n = tl.minimum(tl.load(cnt_ptr + bh * NCH + c), CAP)
            for b0 in range(0, n, HB):
                _, pos, sel = _block_winners(ckey_ptr, cpos_ptr, T, plim, bh, c, NCH, n, b0, CAP,
                                             HB)  # fmt: skip
                si = sel.to(tl.int32)
                dest = base + tl.cumsum(si, axis=0) - si
                tl.store(out_row + dest, pos, mask=sel & (dest < K))
                base += tl.sum(si, axis=0)
        else:
            _, pos, sel = _chunk_winners(cnt_ptr, ckey_ptr, cpos_ptr, T, plim, bh, c, NCH, CAP,
                                         LEAN)  # fmt: skip
            si = sel.to(tl.int32)
            dest = base + tl.cumsum(si, axis=0) - si
            tl.store(out_row + dest, pos, mask=sel & (dest < K))
        if ALPHA:  # noqa: SIM102 (a constexpr and a runtime condition stay separate)
            if c == 0:
                pa = tl.load(palpha_ptr + (bh * NCH + ch[:, None]) * GP + heads[None, :],
                             mask=(ch < NCH)[:, None], other=0.0)  # fmt: skip
                tl.store(alpha_ptr + bh * G + heads, tl.sum(pa, axis=0), mask=heads < G)
    elif c == 0:
        seq_len = tl.load(lens_ptr + bh // HKV)
        M = tl.load(stat_ptr + bh * 2 * GP + heads)
        inv_z = tl.load(stat_ptr + bh * 2 * GP + GP + heads)
        _exact_row_fallback(
            logit_ptr + bh * G * S, out_row, alpha_ptr, bh, heads, M, inv_z, seq_len, S, K,
            window, sinks, G, GP, CHF,
        )  # fmt: skip
    pdl_exit(PDL)


def hist_plan(
    S: int, k: int, chunk: int | None = None, samples: int | None = None, margin: float = MARGIN
) -> dict:
    """Launch plan of :func:`select_topk_hist` for a row of ``S`` positions and ``k`` winners.

    Returns ``SAMP``/``RUN`` (sample size and run length), ``RANK``/``RANKQ`` (sample ranks of
    ``T0`` and ``Tq``), ``CH``/``NCH`` (chunk length, default 1024, and count), ``CAP`` (slots
    per chunk: a power of two >= 2.5x the expected ``MARGIN*k*CH/S`` candidates) and ``NB``
    (buckets: ``next_pow2(k) / 2``, 64 to 16384: the ~1.25 k candidates between ``T0`` and
    ``Tq`` spread over ``NB/2`` buckets, ~5 keys in the k-th key's bucket, ``BCAP`` = 32 kept).
    The sample has up to 1024 keys (``RANK`` ~ 112 for k/S = 1/16: about 10 % rank noise,
    well inside the 1.75x margin).

    ``margin`` (>= 1.75): expected candidates per selected position. A wider margin lowers
    ``T0`` (the sample rank grows to ``~margin*k*SAMP/S``), which makes a row with fewer than
    ``k`` candidates (exact full-row fallback) far rarer with a small sample: the fraction of
    a row above the sample key of rank ``RANK`` is ``Beta(RANK, SAMP + 1 - RANK)``-distributed.
    ``RANKQ`` moves down by as many ranks as ``RANK`` (``[T0, Tq]`` spans the same share of the
    sample, so the buckets are no wider per key than with the default margin), but not below
    ``ceil(k*SAMP/S)``, the k-th key's expected sample rank (the k-th key must fall below the
    clamped top bucket), and ``CAP`` grows with the margin.
    """
    if margin < MARGIN:
        raise ValueError(f"margin must be >= {MARGIN}, got {margin}: use the default or wider")
    samp = samples or min(1024, max(16, 1 << max(4, (max(1, S // 4)).bit_length() - 1)))
    samp = min(samp, max(16, triton.next_power_of_2(S) // 4))
    rank0 = max(1, min(samp, math.ceil(MARGIN * k * samp / S)))
    rank = max(1, min(samp, math.ceil(margin * k * samp / S)))
    ch = min(chunk or 1024, max(16, triton.next_power_of_2(S)))
    nch = triton.cdiv(S, ch)
    cap = min(ch, triton.next_power_of_2(max(16, math.ceil(2.5 * margin * k * ch / S))))
    nb = min(MAX_NB, max(64, triton.next_power_of_2(k) // 2))
    # Tq no deeper than the k-th key's expected sample rank: the k-th key must stay inside the
    # buckets' span (a 256-key sample with margin 3 put it in the clamped top bucket otherwise)
    rankq = max(1, min((2 * rank0) // 7 + rank - rank0, math.ceil(k * samp / S)))
    return {"SAMP": samp, "RUN": min(8, samp), "RANK": rank, "RANKQ": rankq,
            "CH": ch, "NCH": nch, "CAP": cap, "NB": nb}  # fmt: skip


def hist_supported(S: int, k: int) -> bool:
    """Whether :func:`select_topk_hist` applies (rows of at least 64 positions, ``k <= S``)."""
    return S >= 64 and 1 <= k <= S


def select_topk_hist(
    logits: torch.Tensor,
    tile_max: torch.Tensor,
    tile_sum: torch.Tensor,
    seq_lens: torch.Tensor,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
    *,
    chunk: int | None = None,
    samples: int | None = None,
    num_warps: int | None = None,
    need_alpha: bool = True,
    fuse_resolve: bool = False,
    thr_warps: int = 16,
    lean: bool = False,
    hist_search: bool = False,
    merge_emit: bool = False,
    chunk_major: bool = False,
    fast_cand: bool = False,
    sort_search: bool = False,
    cand_maxnreg: int | None = None,
    no_lists: bool = False,
    margin: float = MARGIN,
    _probe: dict | None = None,
    _stop_after: int = 5,
    _buffers: dict | None = None,
    _hist: torch.Tensor | None = None,
    _hcand_diag: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k positions by the group-summed approximate softmax, many programs per row.

    Same arguments and result as :func:`sparq.kernels.select_topk`: ``logits`` ``(B, Hkv, G, S)``
    fp32, ``tile_max``/``tile_sum`` ``(B, Hkv, G, NT)`` from step 1, ``seq_lens`` ``(B,)`` int64;
    returns ``idx`` ``(B, Hkv, k)`` int32 in increasing position order and ``alpha``
    ``(B, Hkv, G)`` fp32. ``chunk``/``samples``/``num_warps`` override the launch plan (tuning);
    ``need_alpha=False`` skips the softmax mass (``alpha`` is then left uninitialised unless the
    exact fallback ran). ``fuse_resolve`` lets every program of the count kernel resolve its
    row itself instead of launching the resolve kernel (four launches instead of five);
    ``thr_warps``: warps of the threshold kernel; ``lean``: per-head statistics read as
    scalars in the candidate pass, and the candidate, count and emit kernels kept in one
    register layout (no shared-memory layout conversions before their scattered stores);
    ``hist_search``: the two sample thresholds by radix-256 ``tl.histogram`` passes instead of
    one radix-16 compare block (same result); ``merge_emit``: without ``need_alpha``, count
    and emit the winners in one kernel by a decoupled look-back over the chunks (same
    output, one launch less); ``chunk_major``: the candidate pass launched chunk-major
    (consecutive programs take consecutive chunks of one row; same output); ``fast_cand``: the
    candidate pass with fewer instructions per position (chunks entirely live and unforced
    skip the masks; the histogram is filled from the compacted candidates read back, and the
    count and emit kernels walk only the live candidate slots; same output);
    ``sort_search``: the two sample thresholds read off one bitonic sort of the sample instead
    of eight radix-16 passes (same thresholds); ``cand_maxnreg``: register cap of the candidate
    pass (more resident programs per multiprocessor); ``no_lists`` (with ``fast_cand``): the
    candidate pass only counts the histogram (atomics without a returned value) and the resolve
    kernel gathers the keys of the k-th key's bucket from the compacted candidates itself, by a
    scan (``True``/1) or by one counter atomic per gathered key (2; same output);
    ``margin``: expected candidates per winner (:func:`hist_plan`; a wider margin makes the
    exact full-row fallback rarer with a small sample; same output). No host
    synchronisation (CUDA-graph capturable).
    ``_buffers`` (:func:`sparq.kernels._hist_attend.hist_attention`): a dict that receives the
    scratch tensors and launch sizes; ``_hist``: a zeroed ``(B*Hkv, NB)`` int32 histogram that
    the caller zeroes again after use: then there is no threshold kernel, every candidate
    program derives its row's thresholds itself. ``_probe`` (tests): a dict that receives ``ok``
    ``(B*Hkv,)``, whether each row was resolved
    through the buckets (``False``: the exact full-row fallback ran). ``_stop_after`` (profiling:
    cumulative times of the first n of the five stages) launches only the first n stages (with
    ``fuse_resolve`` stage 3 launches nothing). ``_hcand_diag`` (profiling with
    ``_stop_after=2``): 1 leaves the histogram out of the candidate pass, 2 also the compaction
    (keys and counts only), 3 the keys too (the logits read alone; 4: with vector loads); the
    selection is then void.
    """
    B, Hkv, G, S = logits.shape
    if not 1 <= k <= S:
        raise ValueError(f"k must be in [1, S={S}], got {k}")
    if S < 64:
        raise ValueError(f"the histogram selection needs S >= 64, got S={S}: use select_topk")
    p = hist_plan(S, k, chunk, samples, margin)
    rows, nt, dev = B * Hkv, tile_max.shape[-1], logits.device
    GP = max(2, triton.next_power_of_2(G))
    nch, cap, nb = p["NCH"], p["CAP"], p["NB"]
    nchp = max(2, triton.next_power_of_2(nch))
    i32 = torch.int32
    stat = torch.empty(rows, 2, GP, device=dev, dtype=torch.float32)
    thr = torch.empty(rows, 2, device=dev, dtype=i32)
    # _hist (hist_attention with merge): a zeroed histogram that the caller's last kernel
    # zeroes again; then the candidate pass derives the thresholds (no threshold kernel)
    thr_in = _hist is not None
    hist = _hist if thr_in else torch.empty(rows, nb, device=dev, dtype=i32)
    blist = torch.empty(rows, nb, BCAP, device=dev, dtype=i32)
    cnt = torch.empty(rows, nch, device=dev, dtype=i32)
    ckey = torch.empty(rows, nch * cap, device=dev, dtype=i32)
    cpos = torch.empty_like(ckey)
    cp = torch.empty(rows, G, nch * cap, device=dev, dtype=torch.float32) if need_alpha else stat
    res = torch.empty(rows, 3, device=dev, dtype=i32)
    wcnt = torch.empty(rows, nch, device=dev, dtype=i32)
    palpha = torch.empty(rows, nch, GP, device=dev, dtype=torch.float32) if need_alpha else stat
    idx = torch.empty(B, Hkv, k, device=dev, dtype=i32)
    alpha = torch.empty(B, Hkv, G, device=dev, dtype=torch.float32)
    nw = num_warps or 4
    merge = merge_emit and not need_alpha
    lbw = triton.next_power_of_2(nch + 1) if merge else 0
    lb = torch.empty(rows, lbw, device=dev, dtype=i32) if merge else thr
    hb = max(16, min(128, triton.next_power_of_2(cap)))  # fast_cand: live slots per block
    nolist = int(no_lists) if fast_cand else 0  # 1: gather by a scan, 2: by counter atomics
    gcnt = torch.empty(rows, device=dev, dtype=i32) if nolist == 2 else thr
    if nolist and fuse_resolve:
        raise ValueError("no_lists needs the separate resolve kernel: pass fuse_resolve=False")
    if thr_in and (nolist or merge):
        raise ValueError("a caller-zeroed histogram (_hist) needs no_lists=False, merge_emit=False")
    if _buffers is not None:  # the scratch of the passes, for kernels launched after them
        _buffers.update(stat=stat, cnt=cnt, ckey=ckey, cpos=cpos, res=res, hist=hist,
                        blist=blist, nch=nch, cap=cap, nb=nb, nchp=nchp, GP=GP)  # fmt: skip
    ntp = max(2, triton.next_power_of_2(nt))
    thr_kw = {"tm_ptr": tile_max, "ts_ptr": tile_sum, "NT": nt, "RANK": p["RANK"],
              "RANKQ": p["RANKQ"], "THR_IN": True, "NTP": ntp, "SAMP": p["SAMP"],
              "RUN": p["RUN"], "THR_H": hist_search, "THR_SORT": sort_search}  # fmt: skip
    if not thr_in:
        thr_kw = {}
        _hthr_kernel[(rows,)](
            logits, tile_max, tile_sum, seq_lens, stat, thr, hist, S, nt, Hkv, local_window,
            sink_tokens, p["RANK"], p["RANKQ"], G=G, GP=GP, NTP=ntp, SAMP=p["SAMP"],
            RUN=p["RUN"], NB=nb, THR_H=hist_search, lb_ptr=lb, LBW=lbw, THR_SORT=sort_search,
            gc_ptr=gcnt, GC=nolist == 2,
            num_warps=thr_warps, **pdl_kw(),  # 16: no spills at SAMP 1024
        )  # fmt: skip
    if _stop_after < 2:
        return idx, alpha
    _hcand_kernel[(nch, rows) if chunk_major else (rows, nch)](
        logits, seq_lens, stat, thr, cnt, ckey, cpos, cp, hist, blist, S, Hkv, nch, local_window,
        sink_tokens, G=G, GP=GP, CH=p["CH"], CAP=cap, NB=nb, BCAP=BCAP, ALPHA=need_alpha,
        LEAN=lean, L2=l2_hints(), DIAG=_hcand_diag, CM=chunk_major, FAST=fast_cand, NOLIST=nolist,
        HB=hb, num_warps=nw, **pdl_kw(), **({"maxnreg": cand_maxnreg} if cand_maxnreg else {}),
        **thr_kw,
    )  # fmt: skip
    if _stop_after < 3:
        return idx, alpha
    if not fuse_resolve or merge:
        _hresolve_kernel[(rows,)](
            cnt, hist, blist, ckey, cpos, res, nch, k, NCHP=nchp, CAP=cap, NB=nb, BCAP=BCAP,
            NOLIST=nolist, thr_ptr=thr, SB=max(16, min(128, 8192 // nchp)), gc_ptr=gcnt,
            num_warps=4 if nb <= 2048 else 8, **pdl_kw(),
        )  # fmt: skip
    if _stop_after < 4:
        return idx, alpha
    if merge:
        from ._lookback import _hcount_emit_kernel

        if _stop_after >= 5:
            _hcount_emit_kernel[(rows, nch)](
                logits, seq_lens, stat, cnt, ckey, cpos, res, lb, idx, alpha, S, Hkv, nch, k,
                local_window, sink_tokens, G=G, GP=GP, CAP=cap, LBW=lbw, NCHP=nchp,
                CHF=min(128, max(16, triton.next_power_of_2(S))), LEAN=lean, num_warps=4,
                **pdl_kw(),
            )  # fmt: skip
        if _probe is not None:
            _probe["ok"] = res[:, 2] != 0
        return idx, alpha
    _hcount_kernel[(rows, nch)](
        cnt, ckey, cpos, cp, res, wcnt, palpha, hist, blist, nch, k, G=G, GP=GP, NCHP=nchp,
        CAP=cap, NB=nb, BCAP=BCAP, ALPHA=need_alpha, FUSED=fuse_resolve, LEAN=lean,
        HB=hb if fast_cand else 0,
        num_warps=4 if nb <= 2048 or not fuse_resolve else 8, **pdl_kw(),
    )  # fmt: skip
    if _stop_after < 5:
        return idx, alpha
    _hemit_kernel[(rows, nch)](
        logits, seq_lens, stat, cnt, ckey, cpos, res, wcnt, palpha, idx, alpha, S, Hkv, nch, k,
        local_window, sink_tokens, G=G, GP=GP, NCHP=nchp, CAP=cap,
        # a short fallback block keeps the (rarely taken) exact search from costing the common
        # path registers (61 instead of 155 per thread on sm_90)
        CHF=min(128, max(16, triton.next_power_of_2(S))), ALPHA=need_alpha, LEAN=lean,
        HB=hb if fast_cand else 0,
        num_warps=4, **pdl_kw(),
    )  # fmt: skip
    if _probe is not None:
        _probe["ok"] = res[:, 2] != 0
    return idx, alpha
