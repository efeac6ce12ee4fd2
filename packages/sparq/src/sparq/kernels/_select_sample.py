"""Exact top-k selection through a sampled threshold and a parallel candidate filter.

Same contract and result as :func:`sparq.kernels.select_topk` (paper Alg. 1, step 2 index choice),
built from three short kernels so that the one full pass over the approximate logits runs on many
programs per (batch, KV head) row instead of one:

1. ``_threshold_kernel`` (one program per row): merges the tile statistics into the global
   max ``M_h`` and normaliser ``1/Z_h`` per query head, reads a sample of ``SAMP`` keys (runs of 8
   evenly spaced positions) and finds, by a bitwise search on the order-preserving int32 images,
   the sample key of rank ``RANK ~ 1.75 * k * SAMP / S``. Its value ``T0`` is expected to leave
   ~1.75 k candidates, so the true k-th key is very likely ``>= T0``.
2. ``_candidate_kernel`` (grid rows x chunks of ``CH`` positions): one read of the logits; keys
   ``>= T0`` are compacted, in position order, into a fixed slot range of ``CAP`` entries per
   chunk (key, position and the per-head softmax mass), and the chunk count is stored.
3. ``_final_kernel`` (one program per row): if the candidates hold at least k keys and no chunk
   overflowed, every key ``>=`` the true threshold is a candidate, so an in-register bitwise search
   over the ``NCH * CAP`` slots gives the exact k-th key; winners are emitted in position order
   (ties at the threshold go to the lowest positions, as in the reference's stable sort) and
   ``alpha`` is summed from the stored masses. Otherwise (a bad sample) the program runs the exact
   radix-16 search over the whole row instead, so the answer never depends on the sample.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._common import l2_hints, load_hint, pdl_enter, pdl_exit, pdl_kw
from ._search import _rank_thr, _rank_threshold, _rank_threshold16  # noqa: F401 (re-exported)
from ._select import _global_stats, _head_scalar, _keys, _ordered

__all__ = ["sample_plan", "select_topk_sampled"]

MARGIN = 1.75  # expected candidates per selected position
MAX_SLOTS = 16384  # largest candidate block the final kernel keeps in registers


@triton.jit
def _positions(CH: tl.constexpr, rt, LEAN: tl.constexpr):
    """``arange(CH)``; with ``LEAN`` XOR-ed with a runtime zero (``rt < 0`` for a runtime
    ``rt >= 0``), so that Triton cannot prove the positions contiguous and keeps the loads in
    the one-value-per-thread layout of the scattered candidate stores (vectorised loads made it
    convert every tensor, pointers included, through shared memory before the stores)."""
    j = tl.arange(0, CH)
    if LEAN:
        # as a tensor: Triton passes an integer argument equal to 1 as a compile-time constant
        z = tl.zeros((), tl.int32) + rt
        j = j ^ (z < 0).to(tl.int32)
    return j


@triton.jit
def _keys_lean(logit_row, cols, stat_row, seq_len, S, window, sinks, G: tl.constexpr,
               GP: tl.constexpr, HINT: tl.constexpr = 0):  # fmt: skip
    """:func:`_keys` with each head's ``M_h`` and ``1/Z_h`` read as scalars from ``stat_row``
    (no reductions over the head vector); also returns head 0's logits (loaded only below the
    live length: the positions beyond it are invalid, key ``-inf``, anyway)."""
    inb = cols < S
    valid = cols < seq_len
    lg0 = load_hint(logit_row + cols, valid, float("-inf"), HINT)
    if G == 1:
        key = lg0
    else:
        key = tl.exp(lg0 - tl.load(stat_row)) * tl.load(stat_row + GP)
        for h in tl.static_range(1, G):
            lg = load_hint(logit_row + h * S + cols, valid, float("-inf"), HINT)
            key += tl.exp(lg - tl.load(stat_row + h)) * tl.load(stat_row + GP + h)
    forced = valid & ((cols < sinks) | (cols >= seq_len - window))
    key = tl.where(forced, float("inf"), key)
    key = tl.where(valid, key, float("-inf"))
    return tl.where(inb, _ordered(key), -2147483648), lg0


@triton.jit
def _keys_interior(logit_row, cols, stat_row, S, G: tl.constexpr, GP: tl.constexpr,
                   HINT: tl.constexpr = 0):  # fmt: skip
    """:func:`_keys_lean` for positions that are all live and not forced (no masks): the keys
    are sums of probabilities (>= +0), whose int32 images are their bit patterns."""
    if HINT == 1:
        lg0 = tl.load(logit_row + cols, eviction_policy="evict_first")
    else:
        lg0 = tl.load(logit_row + cols)
    if G == 1:
        key = lg0
        u = _ordered(key)
    else:
        key = tl.exp(lg0 - tl.load(stat_row)) * tl.load(stat_row + GP)
        for h in tl.static_range(1, G):
            if HINT == 1:
                lg = tl.load(logit_row + h * S + cols, eviction_policy="evict_first")
            else:
                lg = tl.load(logit_row + h * S + cols)
            key += tl.exp(lg - tl.load(stat_row + h)) * tl.load(stat_row + GP + h)
        u = key.to(tl.int32, bitcast=True)
    return u, lg0


@triton.jit
def _compact_candidates(
    logit_row, cols, heads, M, inv_z, stat_row, seq_len, S, window, sinks, t0, bh, c, NCH,
    cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, G: tl.constexpr, GP: tl.constexpr, CAP: tl.constexpr,
    ALPHA: tl.constexpr, LEAN: tl.constexpr, HINT: tl.constexpr = 0,
):  # fmt: skip
    """The candidate pass over chunk ``c`` of row ``bh`` (shared by the sampled and histogram
    selections): keys ``>= t0`` are compacted in position order into the chunk's ``CAP`` slots
    (key, position and, with ``ALPHA``, each head's softmax mass), and the chunk's candidate
    count is stored (it may exceed ``CAP``: the consumers then take their exact fallback).
    ``LEAN`` reads the per-head statistics as scalars from ``stat_row`` (``M`` then ``1/Z``,
    ``GP`` apart) and, for one head, reuses the loaded logits for the masses.
    Returns the keys, the candidate mask, each candidate's rank in the chunk and the kept mask.
    """
    if LEAN:
        u, lg0 = _keys_lean(logit_row, cols, stat_row, seq_len, S, window, sinks, G, GP, HINT)
    else:
        u = _keys(logit_row, cols, heads, M, inv_z, seq_len, S, window, sinks, G)
        lg0 = u.to(tl.float32)  # unused on this path
    cand, rank, keep, _ = _store_compacted(
        u, lg0, t0, cols, logit_row, heads, M, inv_z, stat_row, S, bh, c, NCH,
        cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, G, GP, CAP, ALPHA, LEAN,
    )  # fmt: skip
    return u, cand, rank, keep


@triton.jit
def _store_compacted(
    u, lg0, t0, cols, logit_row, heads, M, inv_z, stat_row, S, bh, c, NCH,
    cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, G: tl.constexpr, GP: tl.constexpr, CAP: tl.constexpr,
    ALPHA: tl.constexpr, LEAN: tl.constexpr,
):  # fmt: skip
    """The stores of :func:`_compact_candidates` for keys ``u`` already computed (``lg0``: head
    0's logits on the ``LEAN`` path): the chunk's candidate count, then the kept keys, positions
    and, with ``ALPHA``, masses. Returns the candidate mask, ranks, kept mask and count."""
    cand = u >= t0
    ci = cand.to(tl.int32)
    rank = tl.cumsum(ci, axis=0) - ci
    n = tl.sum(ci, axis=0)
    tl.store(cnt_ptr + bh * NCH + c, n)
    keep = cand & (rank < CAP)
    slot = (bh * NCH + c) * CAP + rank
    tl.store(ckey_ptr + slot, u, mask=keep)
    tl.store(cpos_ptr + slot, cols, mask=keep)
    if ALPHA:
        nslot = NCH * CAP
        cp_row = cp_ptr + bh * G * nslot + c * CAP
        if LEAN:
            for h in tl.static_range(G):
                if h == 0:
                    lg = lg0
                else:
                    lg = tl.load(logit_row + h * S + cols, mask=keep, other=float("-inf"))
                p = tl.exp(lg - tl.load(stat_row + h)) * tl.load(stat_row + GP + h)
                tl.store(cp_row + h * nslot + rank, p, mask=keep)
        else:
            for h in tl.static_range(G):
                lg = tl.load(logit_row + h * S + cols, mask=keep, other=float("-inf"))
                p = tl.exp(lg - _head_scalar(M, heads, h)) * _head_scalar(inv_z, heads, h)
                tl.store(cp_row + h * nslot + rank, p, mask=keep)
    return cand, rank, keep, n


@triton.jit
def _pick_candidates(
    cnt_ptr, ckey_ptr, bh, NC, K, CAP: tl.constexpr, SLOTS: tl.constexpr, R16: tl.constexpr,
    LEAN: tl.constexpr = False,
):  # fmt: skip
    """The ``K`` largest keys of row ``bh``'s candidate block (``NC`` chunks of ``CAP`` slots,
    chunk ``c`` holding ``cnt[c]`` live keys in position order).

    Returns ``(slots, sel, dest)``: the slot offsets ``0..SLOTS`` within the row's block, the mask
    of the chosen slots (ties at the threshold go to the earliest slots, i.e. lowest positions)
    and each chosen slot's output index (0..K-1, in slot order).
    """
    slots = _positions(SLOTS, NC, LEAN)
    c = slots // CAP
    live = (c < NC) & ((slots % CAP) < tl.load(cnt_ptr + bh * NC + c, mask=c < NC))
    u = tl.load(ckey_ptr + bh * NC * CAP + slots, mask=live, other=-2147483648)
    T = _rank_thr(u, K, R16)
    need = K - tl.sum((u > T).to(tl.int32), axis=0)
    eq = (u == T).to(tl.int32)
    eq_rank = tl.cumsum(eq, axis=0) - eq
    sel = (u > T) | ((eq == 1) & (eq_rank < need))
    sel_i = sel.to(tl.int32)
    return slots, sel, tl.cumsum(sel_i, axis=0) - sel_i


@triton.jit
def _pick_dense(
    cnt_ptr, ckey_ptr, bh, NC, K, CAP: tl.constexpr, DS: tl.constexpr, R16: tl.constexpr,
    LEAN: tl.constexpr,
):  # fmt: skip
    """:func:`_pick_candidates` over the live slots only, packed in chunk order into a block of
    ``DS`` keys (the caller checks that they fit): the searches touch ``DS`` instead of
    ``NC * CAP`` (padded) keys. Returns the sparse slot offsets of the packed keys."""
    i = _positions(DS, NC, LEAN)
    run = tl.zeros((), tl.int32)
    cidx = tl.zeros((DS,), tl.int32)
    prev = tl.zeros((DS,), tl.int32)
    for c in range(0, NC):  # chunk of packed index i: the chunks whose live keys end at or before i
        run += tl.load(cnt_ptr + bh * NC + c)
        past = i >= run
        cidx += past.to(tl.int32)
        prev = tl.where(past, run, prev)
    live = i < run
    slots = tl.where(live, cidx * CAP + (i - prev), 0)
    u = tl.load(ckey_ptr + bh * NC * CAP + slots, mask=live, other=-2147483648)
    T = _rank_thr(u, K, R16)
    need = K - tl.sum((u > T).to(tl.int32), axis=0)
    eq = (u == T).to(tl.int32)
    eq_rank = tl.cumsum(eq, axis=0) - eq
    sel = live & ((u > T) | ((eq == 1) & (eq_rank < need)))
    sel_i = sel.to(tl.int32)
    return slots, sel, tl.cumsum(sel_i, axis=0) - sel_i


@triton.jit
def _threshold_kernel(
    logit_ptr, m_ptr, l_ptr, lens_ptr, stat_ptr, thr_ptr, S, NT, HKV, window, sinks, RANK,
    G: tl.constexpr, GP: tl.constexpr, NTP: tl.constexpr, SAMP: tl.constexpr, RUN: tl.constexpr,
    R16: tl.constexpr,
    PDL: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    seq_len = tl.load(lens_ptr + bh // HKV)
    heads = tl.arange(0, GP)
    M, inv_z = _global_stats(m_ptr, l_ptr, bh, NT, G, GP, NTP)
    tl.store(stat_ptr + bh * 2 * GP + heads, M)
    tl.store(stat_ptr + bh * 2 * GP + GP + heads, inv_z)
    n = tl.arange(0, SAMP)
    cols = (((n // RUN).to(tl.int64) * S) // (SAMP // RUN) + (n % RUN)).to(tl.int32)
    u = _keys(logit_ptr + bh * G * S, cols, heads, M, inv_z, seq_len, S, window, sinks, G)
    tl.store(thr_ptr + bh, _rank_thr(u, RANK, R16))
    pdl_exit(PDL)


@triton.jit
def _candidate_kernel(
    logit_ptr, lens_ptr, stat_ptr, thr_ptr, cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, S, HKV, NCH,
    window, sinks, G: tl.constexpr, GP: tl.constexpr, CH: tl.constexpr, CAP: tl.constexpr,
    LEAN: tl.constexpr, ALPHA: tl.constexpr,
    PDL: tl.constexpr = False, L2: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1)
    seq_len = tl.load(lens_ptr + bh // HKV)
    heads = tl.arange(0, GP)
    M = tl.load(stat_ptr + bh * 2 * GP + heads)
    inv_z = tl.load(stat_ptr + bh * 2 * GP + GP + heads)
    cols = c * CH + _positions(CH, seq_len, LEAN)
    _compact_candidates(
        logit_ptr + bh * G * S, cols, heads, M, inv_z, stat_ptr + bh * 2 * GP, seq_len, S,
        window, sinks, tl.load(thr_ptr + bh), bh, c, NCH, cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr,
        G, GP, CAP, ALPHA == 1, LEAN, 1 if L2 else 0,
    )  # fmt: skip
    pdl_exit(PDL)


@triton.jit
def _exact_row_fallback(
    logit_row, out_row, alpha_ptr, bh, heads, M, inv_z, seq_len, S, K, window, sinks,
    G: tl.constexpr, GP: tl.constexpr, CHF: tl.constexpr,
):  # fmt: skip
    """Exact radix-16 selection over the whole row (keys recomputed per pass; rarely used)."""
    offs = tl.arange(0, CHF)
    j = tl.arange(0, 16).to(tl.int64)
    prefix = tl.zeros((), tl.int64)
    for p in tl.static_range(8):
        cand_s = (prefix + (j << (28 - 4 * p)) - 2147483648).to(tl.int32)
        acc = tl.zeros((CHF, 16), tl.int32)
        for start in range(0, S, CHF):
            u = _keys(logit_row, start + offs, heads, M, inv_z, seq_len, S, window, sinks, G)
            acc += (u[:, None] >= cand_s[None, :]).to(tl.int32)
        cnt = tl.sum(acc, axis=0)
        prefix = prefix + (tl.max(tl.where(cnt >= K, j, 0), axis=0) << (28 - 4 * p))
    T = (prefix - 2147483648).to(tl.int32)
    acc1 = tl.zeros((CHF,), tl.int32)
    for start in range(0, S, CHF):
        u = _keys(logit_row, start + offs, heads, M, inv_z, seq_len, S, window, sinks, G)
        acc1 += (u > T).to(tl.int32)
    need = K - tl.sum(acc1, axis=0)
    carry_sel = tl.zeros((), tl.int32)
    carry_eq = tl.zeros((), tl.int32)
    alpha = tl.zeros((GP,), tl.float32)
    for start in range(0, S, CHF):
        cols = start + offs
        u = _keys(logit_row, cols, heads, M, inv_z, seq_len, S, window, sinks, G)
        eq = (u == T).to(tl.int32)
        eq_rank = tl.cumsum(eq, axis=0) - eq + carry_eq
        sel = (u > T) | ((eq == 1) & (eq_rank < need))
        sel_i = sel.to(tl.int32)
        pos = tl.cumsum(sel_i, axis=0) - sel_i + carry_sel
        tl.store(out_row + pos, cols, mask=sel)
        for h in tl.static_range(G):
            lg = tl.load(logit_row + h * S + cols, mask=sel, other=float("-inf"))
            m_h = tl.sum(tl.where(heads == h, M, 0.0), axis=0)
            iz_h = tl.sum(tl.where(heads == h, inv_z, 0.0), axis=0)
            mass = tl.sum(tl.where(sel, tl.exp(lg - m_h) * iz_h, 0.0), axis=0)
            alpha += tl.where(heads == h, mass, 0.0)
        carry_sel += tl.sum(sel_i, axis=0)
        carry_eq += tl.sum(eq, axis=0)
    tl.store(alpha_ptr + bh * G + heads, alpha, mask=heads < G)


@triton.jit
def _emit_winners(
    logit_ptr, stat_ptr, ckey_ptr, cpos_ptr, cp_ptr, out_row, alpha_ptr, bh, slots, sel, dest,
    S, NCH, G: tl.constexpr, GP: tl.constexpr, CAP: tl.constexpr, ALPHA: tl.constexpr,
):  # fmt: skip
    """Winner positions at ``dest`` and alpha from the chosen candidate slots of row ``bh``."""
    heads = tl.arange(0, GP)
    pos = tl.load(cpos_ptr + bh * NCH * CAP + slots, mask=sel, other=0)
    tl.store(out_row + dest, pos, mask=sel)
    if ALPHA == 2:  # one head: the key is the logit (forced +inf keys: logit reloaded)
        u = tl.load(ckey_ptr + bh * NCH * CAP + slots, mask=sel, other=0)
        lg = tl.where(u < 0, u ^ 0x7FFFFFFF, u).to(tl.float32, bitcast=True)
        forced = sel & (u == 2139095040)
        lg = tl.where(forced, tl.load(logit_ptr + bh * S + pos, mask=forced, other=0.0), lg)
        p = tl.exp(lg - tl.load(stat_ptr + bh * 2 * GP)) * tl.load(stat_ptr + bh * 2 * GP + GP)
        tl.store(alpha_ptr + bh, tl.sum(tl.where(sel, p, 0.0), axis=0))
    elif ALPHA:
        alpha = tl.zeros((GP,), tl.float32)
        for h in tl.static_range(G):
            p = tl.load(cp_ptr + (bh * G + h) * NCH * CAP + slots, mask=sel, other=0.0)
            alpha += tl.where(heads == h, tl.sum(p, axis=0), 0.0)
        tl.store(alpha_ptr + bh * G + heads, alpha, mask=heads < G)


@triton.jit
def _final_kernel(
    logit_ptr, lens_ptr, stat_ptr, cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr, out_idx_ptr, alpha_ptr,
    S, HKV, NCH, K, window, sinks, G: tl.constexpr, GP: tl.constexpr, NCHP: tl.constexpr,
    CAP: tl.constexpr, SLOTS: tl.constexpr, CHF: tl.constexpr, R16: tl.constexpr,
    LEAN: tl.constexpr, ALPHA: tl.constexpr, DENSE: tl.constexpr,
    PDL: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    heads = tl.arange(0, GP)
    ch = tl.arange(0, NCHP)
    cnt = tl.load(cnt_ptr + bh * NCH + ch, mask=ch < NCH, other=0)
    total = tl.sum(cnt, axis=0)
    ok = (total >= K) & (tl.max(cnt, axis=0) <= CAP)
    out_row = out_idx_ptr + bh * K
    args = (logit_ptr, stat_ptr, ckey_ptr, cpos_ptr, cp_ptr, out_row, alpha_ptr, bh)
    if ok & (total <= DENSE):  # never true for DENSE = 0 (total >= K >= 1)
        if DENSE > 0:  # the live slots packed into a block of DENSE keys
            slots, sel, dest = _pick_dense(cnt_ptr, ckey_ptr, bh, NCH, K, CAP, DENSE, R16, LEAN)
            _emit_winners(*args, slots, sel, dest, S, NCH, G, GP, CAP, ALPHA)
    elif ok:
        slots, sel, dest = _pick_candidates(cnt_ptr, ckey_ptr, bh, NCH, K, CAP, SLOTS, R16, LEAN)
        _emit_winners(*args, slots, sel, dest, S, NCH, G, GP, CAP, ALPHA)
    else:
        seq_len = tl.load(lens_ptr + bh // HKV)
        M = tl.load(stat_ptr + bh * 2 * GP + heads)
        inv_z = tl.load(stat_ptr + bh * 2 * GP + GP + heads)
        _exact_row_fallback(
            logit_ptr + bh * G * S, out_row, alpha_ptr, bh, heads, M, inv_z, seq_len, S, K,
            window, sinks, G, GP, CHF,
        )  # fmt: skip
    pdl_exit(PDL)


def _final_warps(slots: int) -> int:
    # ~16-32 slots per thread keeps the final kernel spill-free (ptxas, sm_90: <= 128 registers)
    return 16 if slots >= 16384 else 8 if slots >= 4096 else 4


def sample_plan(
    S: int, k: int, chunk: int | None = None, samples: int | None = None, forced: int = 0
) -> dict:
    """Launch plan of :func:`select_topk_sampled` for a row of ``S`` positions and ``k`` winners.

    Returns a dict with ``SAMP`` (sample size, power of two, ``<= S/4``), ``RANK`` (sample rank of
    the threshold), ``CH``/``NCH`` (chunk length and count), ``CAP`` (slots per chunk, about twice
    the expected ``MARGIN * k * CH / S`` candidates, widened to fill the register block) and
    ``slots = next_pow2(NCH * CAP)``, the final kernel's register block. Without
    ``chunk`` the chunk length (512-4096) giving the fewest slots is taken (1024 on ties). The
    plan is usable when ``slots <= MAX_SLOTS`` (see :func:`sampled_supported`). ``forced``
    (window plus sinks, all candidates of the row's first and last chunks) widens ``CAP`` to
    the expected candidates plus the forced ones plus four standard deviations, so that short
    chunks do not overflow at the end of the row.
    """
    samp = samples or min(2048, max(16, 1 << max(4, (max(1, S // 4)).bit_length() - 1)))
    samp = min(samp, max(16, triton.next_power_of_2(S) // 4))
    rank = max(1, min(samp, math.ceil(MARGIN * k * samp / S)))

    def plan(ch: int) -> dict:
        ch = min(ch, max(16, triton.next_power_of_2(S)))
        nch = triton.cdiv(S, ch)
        mean = MARGIN * k * ch / S
        cap0 = max(16, math.ceil(2 * mean))
        if forced:
            cap0 = max(cap0, math.ceil(mean + forced + 4 * mean**0.5))
        cap0 = min(ch, cap0)
        slots = max(32, triton.next_power_of_2(nch * cap0))
        # the register block is a power of two anyway: give its spare room to the chunks
        return {"CH": ch, "NCH": nch, "CAP": min(ch, slots // nch), "slots": slots}

    if chunk:
        best = plan(chunk)
    else:
        best = min((plan(c) for c in (1024, 512, 2048, 4096)), key=lambda p: p["slots"])
    return {"SAMP": samp, "RUN": min(8, samp), "RANK": rank, **best}


def sampled_supported(S: int, k: int, chunk: int | None = None) -> bool:
    """Whether the sampled selection applies (rows of >= 64 positions, candidate block fits)."""
    return S >= 64 and sample_plan(S, k, chunk)["slots"] <= MAX_SLOTS


def select_topk_sampled(
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
    radix16: bool = False,
    lean: bool = False,
    cand_warps: int = 4,
    thr_warps: int = 4,
    fallback_block: int = 512,
    hist_search: bool = False,
    need_alpha: bool = True,
    radix4: bool = False,
    key_alpha: bool = False,
    dense_block: int = 0,
    forced_cap: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k positions by the group-summed approximate softmax (sampled-threshold variant).

    Same arguments and result as :func:`sparq.kernels.select_topk`: ``logits`` ``(B, Hkv, G, S)``
    fp32, ``tile_max``/``tile_sum`` ``(B, Hkv, G, NT)``, ``seq_lens`` ``(B,)`` int64; returns
    ``idx`` ``(B, Hkv, k)`` int32 in increasing position order and ``alpha`` ``(B, Hkv, G)`` fp32.
    ``chunk``/``samples``/``num_warps`` override the launch plan (tuning); ``radix16`` finds
    the sample threshold and the exact k-th key by 8 radix-16 passes (16 thresholds counted at
    once) instead of 32 one-bit passes (same result, fewer block reductions); ``lean`` reads
    the per-head statistics as scalars in the candidate pass and keeps the candidate and final
    kernels in one register layout (no shared-memory layout conversions before the scattered
    stores); ``cand_warps``/``thr_warps``: the candidate and threshold kernels' warps (fewer
    warps: block reductions by warp shuffles with fewer shared-memory barriers);
    ``fallback_block``: positions per step of the exact full-row fallback (smaller blocks cost
    the common path fewer registers, sm_90: 64 instead of 90 per thread at 128, so more rows
    run at once); ``hist_search``: both searches by four radix-256 ``tl.histogram`` passes;
    ``radix4``: both searches by 16 radix-4 passes, three counts packed in one reduction
    (takes precedence; all searches give the same result); ``need_alpha=False`` stores no
    softmax masses (``alpha`` is then left uninitialised unless the exact fallback ran);
    ``key_alpha`` (one head per KV head): no masses stored either, ``alpha`` is summed from the
    winners' keys, which are their logits (forced positions' logits reloaded); ``dense_block``
    (a power of two, 0: off): rows with at most that many candidates search them packed into
    a block of that size instead of the padded ``NCH * CAP`` slots; ``forced_cap``: chunk
    capacities that also hold the window and sink positions (:func:`sample_plan`; the plain
    plan when the wider one does not fit). No host
    synchronisation: CUDA-graph capturable. Scratch: ``B*Hkv*(NCH*CAP*(2+G) + NCH + 2G + 1)``
    words (about ``3.5*k*(2+G)`` per row).
    """
    B, Hkv, G, S = logits.shape
    if not 1 <= k <= S:
        raise ValueError(f"k must be in [1, S={S}], got {k}")
    plan = sample_plan(S, k, chunk, samples)
    if forced_cap:
        wide = sample_plan(S, k, chunk, samples, max(0, local_window) + max(0, sink_tokens))
        plan = wide if wide["slots"] <= MAX_SLOTS else plan
    if plan["slots"] > MAX_SLOTS or S < 64:
        raise ValueError(
            f"the sampled selection needs S >= 64 and <= {MAX_SLOTS} candidate slots; got S={S}, "
            f"k={k} ({plan['slots']} slots): use select_topk for this shape"
        )
    rows = B * Hkv
    nt = tile_max.shape[-1]
    dev = logits.device
    search = 3 if radix4 else 2 if hist_search else int(radix16)
    GP = max(2, triton.next_power_of_2(G))
    NTP = max(2, triton.next_power_of_2(nt))
    nch, cap = plan["NCH"], plan["CAP"]
    stat = torch.empty(rows, 2, GP, device=dev, dtype=torch.float32)
    thr = torch.empty(rows, device=dev, dtype=torch.int32)
    cnt = torch.empty(rows, nch, device=dev, dtype=torch.int32)
    ckey = torch.empty(rows, nch * cap, device=dev, dtype=torch.int32)
    cpos = torch.empty_like(ckey)
    alpha_mode = 0 if not need_alpha else 2 if key_alpha and G == 1 else 1
    cp = (
        torch.empty(rows, G, nch * cap, device=dev, dtype=torch.float32)
        if alpha_mode == 1
        else stat
    )
    idx = torch.empty(B, Hkv, k, device=dev, dtype=torch.int32)
    alpha = torch.empty(B, Hkv, G, device=dev, dtype=torch.float32)
    _threshold_kernel[(rows,)](
        logits, tile_max, tile_sum, seq_lens, stat, thr, S, nt, Hkv, local_window, sink_tokens,
        plan["RANK"], G=G, GP=GP, NTP=NTP, SAMP=plan["SAMP"], RUN=plan["RUN"], R16=search,
        num_warps=thr_warps, **pdl_kw(),
    )  # fmt: skip
    _candidate_kernel[(rows, nch)](
        logits, seq_lens, stat, thr, cnt, ckey, cpos, cp, S, Hkv, nch, local_window, sink_tokens,
        G=G, GP=GP, CH=plan["CH"], CAP=cap, LEAN=lean, ALPHA=alpha_mode, L2=l2_hints(),
        num_warps=cand_warps,
        **pdl_kw(),
    )  # fmt: skip
    _final_kernel[(rows,)](
        logits, seq_lens, stat, cnt, ckey, cpos, cp, idx, alpha, S, Hkv, nch, k, local_window,
        sink_tokens, G=G, GP=GP, NCHP=max(2, triton.next_power_of_2(nch)), CAP=cap,
        SLOTS=plan["slots"],
        CHF=min(fallback_block, max(16, triton.next_power_of_2(S))), R16=search, LEAN=lean,
        ALPHA=alpha_mode, DENSE=dense_block,
        num_warps=num_warps or _final_warps(plan["slots"]), **pdl_kw(),
    )  # fmt: skip
    return idx, alpha
