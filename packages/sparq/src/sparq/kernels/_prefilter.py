"""Step 1 with the candidate filter built in: exact top-k without an approximate-logits scratch.

The histogram selection (:mod:`sparq.kernels._select_hist`) reads step 1's approximate logits
back from a ``(B, Hkv, G, S)`` fp32 scratch: step 1 writes ``4*G*S`` bytes per row and the
candidate pass reads them again, as much traffic as step 1's own reads of ``K_t`` when
``G = 4, r = 16``. Here step 1 keeps only the positions that can be among the k winners
(paper Alg. 1: step 1 scores and the step-2 index choice), so that traffic goes away:

1. ``_pf_thr_kernel`` (one program per row): the approximate logits of a fixed sample of
   positions (the histogram selection's sample; written to the scratch at those positions
   only), per-head softmax statistics estimated from the sample (``M~`` the sample's maximum,
   ``Z~`` its sum of ``exp(logit - M~)`` scaled by live positions / live sample positions) and
   ``T0~``, the sample key of rank ``~margin*k*SAMP/S`` under those estimates.
2. ``_pf_step1_kernel`` (rows x tiles): the logits of a tile, its exact softmax statistics (as
   :func:`sparq.kernels.approx_logits`), and the estimated keys
   ``key~ = sum_h exp(l_h - M~_h) / Z~_h``; positions with ``key~ >= T0~`` (and the forced window
   and sink positions) are compacted, in position order, into the tile's ``CAP`` slots: position
   and the ``G`` raw logits.
3. The histogram selection's threshold kernel (exact statistics; ``T0``/``Tq`` and the bucket
   shift from the exact keys of the sample), then ``_pf_rekey_kernel`` (rows x tiles): the
   exact keys and softmax masses of the kept slots, and the bucket histogram.
4. The histogram selection's resolve, count and emit kernels, unchanged but for one more check.

**Why the answer is exact.** Write ``c_h = exp(-M_h)/Z_h`` for the exact statistics and ``c~_h``
for the estimates, ``rho_h = c_h/c~_h``. A position that was not kept has ``key~ < T0~``, so its
exact key ``sum_h rho_h c~_h exp(l_h) < max_h(rho_h) * T0~``. The resolve kernel accepts the
candidates' k-th key ``T`` only if ``T >= max_h(rho_h) * T0~`` (with a relative slack of 2^-10
for rounding), so no dropped position can reach ``T``, and the selection equals that of the
full pass (ties included: a dropped key is strictly below ``T``). When the check fails (or a
tile overflowed, or fewer than k candidates were kept) the emit kernel recomputes the row's
logits into the scratch and runs the exact full-row search of the histogram selection.
The kept logits are bit-identical to those :func:`sparq.kernels.approx_logits` writes
(``rows=True``), and the keys are computed by the same expression, so the winners and masses
are those of :func:`sparq.kernels.select_topk_hist` with ``lean=True, fast_cand=True``.

Traffic per row: ``K_t``'s ``r`` rows once, plus ``~margin*k*(2+G)`` words of candidates.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import l2_hints, pdl_enter, pdl_exit, pdl_kw
from ._search import _rank_thr
from ._select import _keys, _ordered
from ._select_hist import (
    BCAP,
    _bucket,
    _hcount_kernel,
    _hemit_kernel,
    _hresolve_kernel,
    _hthr_kernel,
    hist_plan,
)
from ._step1 import _rows_dot

__all__ = ["PF_MARGIN", "prefilter_supported", "select_topk_prefiltered"]

PF_MARGIN = 2.5  # expected candidates per winner (wider than the full pass's 1.75: see below)


@triton.jit
def _pf_thr_kernel(
    kt_ptr, idx_ptr, qhat_ptr, lens_ptr, logit_ptr, pf_ptr, S, HKV, window, sinks, RANK,
    DH: tl.constexpr, R: tl.constexpr, G: tl.constexpr, GP: tl.constexpr, SAMP: tl.constexpr,
    RUN: tl.constexpr, R16: tl.constexpr, NOFILTER: tl.constexpr = False,
    PDL: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    seq_len = tl.load(lens_ptr + bh // HKV)
    heads = tl.arange(0, GP)
    hmask = heads < G
    n = tl.arange(0, SAMP)
    cols = (((n // RUN).to(tl.int64) * S) // (SAMP // RUN) + (n % RUN)).to(tl.int32)
    valid = cols < seq_len
    acc = _rows_dot(kt_ptr + bh * DH * S, idx_ptr, qhat_ptr, bh, cols, valid, S, R, G, GP)
    acc = tl.where(valid[None, :] & hmask[:, None], acc, float("-inf"))
    logit_row = logit_ptr + bh * G * S
    tl.store(logit_row + heads[:, None].to(tl.int64) * S + cols[None, :], acc,
             mask=hmask[:, None] & (cols < S)[None, :])  # fmt: skip
    # estimated statistics: the sample's max and its exp-sum scaled to the live length
    nv = tl.sum(valid.to(tl.int32), axis=0)
    m = tl.max(acc, axis=1)
    m = tl.where(m == float("-inf"), 0.0, m)
    z = tl.sum(tl.exp(acc - m[:, None]), axis=1) * (seq_len.to(tl.float32) / tl.maximum(nv, 1))
    iz = tl.where(z > 0, 1.0 / tl.maximum(z, 1e-30), 0.0)
    tl.debug_barrier()  # the sample logits are read back below by other threads
    u = _keys(logit_row, cols, heads, m, iz, seq_len, S, window, sinks, G)
    t = _rank_thr(u, RANK, R16)
    t0 = tl.where(t < 0, t ^ 0x7FFFFFFF, t).to(tl.float32, bitcast=True)
    if NOFILTER:  # tests: nothing but the forced positions is kept (exact fallback)
        t0 = float("inf")
    if nv < RANK:  # too few live sample keys to estimate anything: keep every live position
        t0 = float("-inf")
    pf_row = pf_ptr + bh * (2 * GP + 1)
    tl.store(pf_row + heads, m)
    tl.store(pf_row + GP + heads, iz)
    tl.store(pf_row + 2 * GP, t0)
    pdl_exit(PDL)


@triton.jit
def _pf_step1_kernel(
    kt_ptr, idx_ptr, qhat_ptr, lens_ptr, m_ptr, l_ptr, pf_ptr, cnt_ptr, cpos_ptr, cl_ptr, S, NT,
    HKV, window, sinks, DH: tl.constexpr, R: tl.constexpr, G: tl.constexpr, GP: tl.constexpr,
    TILE: tl.constexpr, CAP: tl.constexpr, L2: tl.constexpr = False, PDL: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    tile = tl.program_id(1)
    seq_len = tl.load(lens_ptr + bh // HKV)
    cols = tile * TILE + tl.arange(0, TILE)
    heads = tl.arange(0, GP)
    hmask = heads < G
    live = cols < seq_len
    acc = _rows_dot(kt_ptr + bh * DH * S, idx_ptr, qhat_ptr, bh, cols, cols < S, S, R, G, GP,
                    1 if L2 else 0)  # fmt: skip
    acc = tl.where(live[None, :] & hmask[:, None], acc, float("-inf"))
    # the tile's exact softmax statistics (as approx_logits)
    mt = tl.max(acc, axis=1)
    m_safe = tl.where(mt == float("-inf"), 0.0, mt)
    stat_off = bh * G * NT + heads * NT + tile
    tl.store(m_ptr + stat_off, mt, mask=hmask)
    tl.store(l_ptr + stat_off, tl.sum(tl.exp(acc - m_safe[:, None]), axis=1), mask=hmask)
    # estimated keys; positions that can be among the winners are kept
    pf_row = pf_ptr + bh * (2 * GP + 1)
    m_est = tl.load(pf_row + heads)
    iz_est = tl.load(pf_row + GP + heads)
    key = tl.sum(tl.exp(acc - m_est[:, None]) * iz_est[:, None], axis=0)
    forced = (cols < sinks) | (cols >= seq_len - window)
    cand = live & (forced | (key >= tl.load(pf_row + 2 * GP)))
    ci = cand.to(tl.int32)
    rank = tl.cumsum(ci, axis=0) - ci
    tl.store(cnt_ptr + bh * NT + tile, tl.sum(ci, axis=0))
    keep = cand & (rank < CAP)
    tl.store(cpos_ptr + (bh * NT + tile) * CAP + rank, cols, mask=keep)
    cl_off = (bh * G + heads[:, None]) * NT * CAP + tile * CAP + rank[None, :]
    tl.store(cl_ptr + cl_off, acc, mask=hmask[:, None] & keep[None, :])
    pdl_exit(PDL)


@triton.jit
def _pf_rekey_kernel(
    lens_ptr, stat_ptr, thr_ptr, cnt_ptr, cpos_ptr, cl_ptr, ckey_ptr, cp_ptr, hist_ptr, blist_ptr,
    NCH, HKV, window, sinks, G: tl.constexpr, GP: tl.constexpr, CAP: tl.constexpr,
    NB: tl.constexpr, BCAP: tl.constexpr, HB: tl.constexpr, ALPHA: tl.constexpr,
    NOLIST: tl.constexpr, PDL: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1)
    seq_len = tl.load(lens_ptr + bh // HKV)
    stat_row = stat_ptr + bh * 2 * GP
    t0 = tl.load(thr_ptr + bh * 2)
    sh = tl.load(thr_ptr + bh * 2 + 1).to(tl.int64)
    n = tl.minimum(tl.load(cnt_ptr + bh * NCH + c), CAP)
    ntop = tl.zeros((), tl.int32)
    for b0 in range(0, n, HB):
        jj = b0 + tl.arange(0, HB)
        m = jj < n
        slot = (bh * NCH + c) * CAP + jj
        pos = tl.load(cpos_ptr + slot, mask=m, other=0)
        # the exact key, summed head by head as the full pass's candidate kernel does
        key = tl.zeros((HB,), tl.float32)
        for h in tl.static_range(G):
            off = (bh * G + h) * NCH * CAP + c * CAP + jj
            lg = tl.load(cl_ptr + off, mask=m, other=float("-inf"))
            p = tl.exp(lg - tl.load(stat_row + h)) * tl.load(stat_row + GP + h)
            if ALPHA:
                tl.store(cp_ptr + off, p, mask=m)
            if h == 0:
                key = p
            else:
                key += p
        forced = (pos < sinks) | (pos >= seq_len - window)
        u = _ordered(tl.where(forced, float("inf"), key))
        tl.store(ckey_ptr + slot, u, mask=m)
        above = m & (u >= t0)
        bkt = _bucket(u, t0, sh, NB)
        low = above & (bkt < NB - 1)
        if NOLIST:
            tl.atomic_add(hist_ptr + bh * NB + bkt, tl.full(bkt.shape, 1, tl.int32), mask=low,
                          sem="relaxed")  # fmt: skip
        else:
            j = tl.atomic_add(hist_ptr + bh * NB + bkt, tl.full(bkt.shape, 1, tl.int32),
                              mask=low, sem="relaxed")  # fmt: skip
            tl.store(blist_ptr + (bh * NB + bkt) * BCAP + j, c * CAP + jj, mask=low & (j < BCAP))
        ntop += tl.sum((above & (bkt >= NB - 1)).to(tl.int32), axis=0)
    tl.atomic_add(hist_ptr + bh * NB + NB - 1, ntop, sem="relaxed")
    pdl_exit(PDL)


def prefilter_supported(G: int, S: int, k: int) -> bool:
    """Whether :func:`select_topk_prefiltered` applies: grouped queries (``G >= 2``; one head
    per KV head has the sampled selection), rows of at least 64 positions, ``k <= S``."""
    return G >= 2 and S >= 64 and 1 <= k <= S


def select_topk_prefiltered(
    K_t: torch.Tensor,
    comp_idx: torch.Tensor,
    q_hat: torch.Tensor,
    seq_lens: torch.Tensor,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
    *,
    tile: int | None = None,
    step1_warps: int = 4,
    samples: int | None = None,
    margin: float = PF_MARGIN,
    need_alpha: bool = True,
    thr_warps: int = 8,
    num_warps: int = 4,
    sort_search: bool = True,
    no_lists: bool = False,
    _probe: dict | None = None,
    _no_filter: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 1 and the exact top-k selection in one pipeline, without the logits scratch pass.

    Args:
        K_t: ``(B, Hkv, dh, S)`` keys, S contiguous (bf16/fp16/fp32).
        comp_idx: ``(B, Hkv, r)`` int32 query components ``i1`` (paper Alg. 1, step 1).
        q_hat: ``(B, Hkv, G, r)`` fp32 selected query components times ``1/tau``, ``G >= 2``.
        seq_lens: ``(B,)`` int64 live lengths.
        k, local_window, sink_tokens: as :func:`sparq.kernels.select_topk`.
        tile: positions per step-1 program (= the selection's chunk; default 1024).
        step1_warps, thr_warps, num_warps: warps of step 1, of the threshold kernels and of the
            per-chunk selection kernels.
        samples: sample keys for the thresholds (:func:`hist_plan`; default 1024 at most).
        margin: expected candidates per winner (``>= 1.75``). Wider than the full pass's
            default because the estimated statistics blur the filter; a row whose candidates
            do not provably hold the winners takes the exact fallback, so the margin only
            trades candidate traffic against fallbacks.
        need_alpha: also return the winners' softmax mass per head.
        sort_search, no_lists: as :func:`sparq.kernels.select_topk_hist`.
        _probe (tests): receives ``ok`` ``(B*Hkv,)``, whether each row was resolved from its
            candidates (``False``: the exact fallback ran).
        _no_filter (tests): keep only the forced positions, so every row takes the fallback.

    Returns:
        ``idx`` ``(B, Hkv, k)`` int32 winners in increasing position order and ``alpha``
        ``(B, Hkv, G)`` fp32 (uninitialised without ``need_alpha`` unless the fallback ran), the
        result of :func:`sparq.kernels.select_topk` on :func:`sparq.kernels.approx_logits`.
        No host synchronisation (CUDA-graph capturable). Scratch: the ``(B, Hkv, G, S)`` fp32
        logits buffer is allocated for the fallback but written only at the sample positions,
        plus ``B*Hkv*NCH*CAP*(2+2G)`` words of candidates.
    """
    B, Hkv, dh, S = K_t.shape
    G, r = q_hat.shape[2], q_hat.shape[3]
    if not prefilter_supported(G, S, k):
        raise ValueError(
            f"the pre-filtered selection needs G >= 2 query heads per KV head, S >= 64 and "
            f"1 <= k <= S; got G={G}, S={S}, k={k}: use approx_logits + select_topk_hist"
        )
    p = hist_plan(S, k, tile or 1024, samples, margin)
    rows, dev, i32 = B * Hkv, K_t.device, torch.int32
    GP = max(2, triton.next_power_of_2(G))
    nch, cap, nb, ch = p["NCH"], p["CAP"], p["NB"], p["CH"]
    nchp = max(2, triton.next_power_of_2(nch))
    idx32 = comp_idx.to(i32).contiguous()
    qh = q_hat.contiguous()
    logits = torch.empty(B, Hkv, G, S, device=dev, dtype=torch.float32)
    tmax = torch.empty(B, Hkv, G, nch, device=dev, dtype=torch.float32)
    tsum = torch.empty_like(tmax)
    pf = torch.empty(rows, 2 * GP + 1, device=dev, dtype=torch.float32)
    stat = torch.empty(rows, 2, GP, device=dev, dtype=torch.float32)
    thr = torch.empty(rows, 2, device=dev, dtype=i32)
    hist = torch.empty(rows, nb, device=dev, dtype=i32)
    blist = torch.empty(rows, nb, BCAP, device=dev, dtype=i32)
    cnt = torch.empty(rows, nch, device=dev, dtype=i32)
    cpos = torch.empty(rows, nch * cap, device=dev, dtype=i32)
    ckey = torch.empty_like(cpos)
    cl = torch.empty(rows, G, nch * cap, device=dev, dtype=torch.float32)
    cp = torch.empty_like(cl) if need_alpha else stat
    res = torch.empty(rows, 3, device=dev, dtype=i32)
    wcnt = torch.empty(rows, nch, device=dev, dtype=i32)
    palpha = torch.empty(rows, nch, GP, device=dev, dtype=torch.float32) if need_alpha else stat
    idx = torch.empty(B, Hkv, k, device=dev, dtype=i32)
    alpha = torch.empty(B, Hkv, G, device=dev, dtype=torch.float32)
    nolist = int(no_lists)
    hb = max(16, min(128, triton.next_power_of_2(cap)))
    pdl = pdl_kw()
    _pf_thr_kernel[(rows,)](
        K_t, idx32, qh, seq_lens, logits, pf, S, Hkv, local_window, sink_tokens, p["RANK"],
        DH=dh, R=r, G=G, GP=GP, SAMP=p["SAMP"], RUN=p["RUN"], R16=1, NOFILTER=_no_filter,
        num_warps=thr_warps, **pdl,
    )  # fmt: skip
    _pf_step1_kernel[(rows, nch)](
        K_t, idx32, qh, seq_lens, tmax, tsum, pf, cnt, cpos, cl, S, nch, Hkv, local_window,
        sink_tokens, DH=dh, R=r, G=G, GP=GP, TILE=ch, CAP=cap, L2=l2_hints(),
        num_warps=step1_warps, **pdl,
    )  # fmt: skip
    _hthr_kernel[(rows,)](
        logits, tmax, tsum, seq_lens, stat, thr, hist, S, nch, Hkv, local_window, sink_tokens,
        p["RANK"], p["RANKQ"], G=G, GP=GP, NTP=nchp, SAMP=p["SAMP"], RUN=p["RUN"], NB=nb,
        THR_H=False, lb_ptr=thr, LBW=0, THR_SORT=sort_search, gc_ptr=thr, GC=False,
        num_warps=thr_warps, **pdl,
    )  # fmt: skip
    _pf_rekey_kernel[(rows, nch)](
        seq_lens, stat, thr, cnt, cpos, cl, ckey, cp, hist, blist, nch, Hkv, local_window,
        sink_tokens, G=G, GP=GP, CAP=cap, NB=nb, BCAP=BCAP, HB=hb, ALPHA=need_alpha,
        NOLIST=nolist, num_warps=num_warps, **pdl,
    )  # fmt: skip
    _hresolve_kernel[(rows,)](
        cnt, hist, blist, ckey, cpos, res, nch, k, NCHP=nchp, CAP=cap, NB=nb, BCAP=BCAP,
        NOLIST=nolist, thr_ptr=thr, SB=max(16, min(128, 8192 // nchp)), gc_ptr=thr,
        pf_ptr=pf, stat_ptr=stat, PF=True, GP=GP,
        num_warps=4 if nb <= 2048 else 8, **pdl,
    )  # fmt: skip
    _hcount_kernel[(rows, nch)](
        cnt, ckey, cpos, cp, res, wcnt, palpha, hist, blist, nch, k, G=G, GP=GP, NCHP=nchp,
        CAP=cap, NB=nb, BCAP=BCAP, ALPHA=need_alpha, FUSED=False, LEAN=True, HB=hb,
        num_warps=4, **pdl,
    )  # fmt: skip
    _hemit_kernel[(rows, nch)](
        logits, seq_lens, stat, cnt, ckey, cpos, res, wcnt, palpha, idx, alpha, S, Hkv, nch, k,
        local_window, sink_tokens, G=G, GP=GP, NCHP=nchp, CAP=cap,
        CHF=min(128, max(16, triton.next_power_of_2(S))), ALPHA=need_alpha, LEAN=True, HB=hb,
        kt_ptr=K_t, idx_ptr=idx32, qhat_ptr=qh, RECOMP=True, R=r, DH=dh,
        num_warps=4, **pdl,
    )  # fmt: skip
    if _probe is not None:
        _probe["ok"] = res[:, 2] != 0
    return idx, alpha
