"""Step 1 fused with the candidate filter for one query head per KV head (MHA).

With ``G = 1`` the selection key is the approximate logit itself, so the candidate filter of
:func:`sparq.kernels.select_topk_sampled` can run inside step 1 and the fp32 logits never go to
memory (paper Alg. 1 steps 1-2; saves ``8*S`` bytes per row of the ~``2*r*S`` step 1 reads):

1. ``_fused_sample_kernel`` (one program per row): approximate logits at ``SAMP`` sampled positions
   (runs of 16, gathered straight from ``K_t``), threshold ``T0`` = the sample key of rank
   ``~1.75*k*SAMP/S``.
2. ``_fused_step1_kernel`` (grid rows x tiles): step 1 with fp32 multiply-adds, per-tile softmax
   statistics, and the keys ``>= T0`` compacted into ``CAP`` slots per tile (key, position,
   logit).
3. ``_final_kernel`` of the sampled selection in logit mode: exact k-th key over the slots, winners
   in position order, ``alpha`` from the stored logits and the merged tile statistics. When the
   sample misjudged (too few candidates or a full tile) the row is selected exactly by a radix-16
   search that recomputes the logits from ``K_t``.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._common import pdl_enter, pdl_exit, pdl_kw
from ._select import _global_stats, _ordered
from ._select_sample import (
    MARGIN,
    MAX_SLOTS,
    _final_warps,
    _pick_candidates,
    _positions,
    _rank_thr,
)

__all__ = ["fused_mha_plan", "fused_mha_supported", "select_fused_mha"]


@triton.jit
def _kt_keys(kt_row, idx_row, q_row, cols, seq_len, S, window, sinks, R: tl.constexpr):
    """Ordered int32 keys and fp32 logits of positions ``cols`` computed from ``K_t``: a loop
    over the r gathered rows, each one contiguous run multiply-added into the logits (no
    reduction across threads)."""
    inb = cols < S
    logit = tl.zeros(cols.shape, tl.float32)
    for j in tl.static_range(R):
        c = tl.load(idx_row + j).to(tl.int64)
        kt = tl.load(kt_row + c * S + cols, mask=inb, other=0.0).to(tl.float32)
        logit += tl.load(q_row + j) * kt
    valid = cols < seq_len
    logit = tl.where(valid, logit, float("-inf"))
    forced = valid & ((cols < sinks) | (cols >= seq_len - window))
    key = tl.where(forced, float("inf"), logit)
    return tl.where(inb, _ordered(key), -2147483648), logit


@triton.jit
def _fused_sample_kernel(
    kt_ptr, idx_ptr, qhat_ptr, lens_ptr, thr_ptr, S, HKV, window, sinks, RANK,
    DH: tl.constexpr, R: tl.constexpr, RP: tl.constexpr, SAMP: tl.constexpr, RUN: tl.constexpr,
    SEARCH: tl.constexpr,
    PDL: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    seq_len = tl.load(lens_ptr + bh // HKV)
    n = tl.arange(0, SAMP)
    cols = (((n // RUN).to(tl.int64) * S) // (SAMP // RUN) + (n % RUN)).to(tl.int32)
    u, _ = _kt_keys(
        kt_ptr + bh * DH * S,
        idx_ptr + bh * R,
        qhat_ptr + bh * R,
        cols,
        seq_len,
        S,
        window,
        sinks,
        R,
    )
    tl.store(thr_ptr + bh, _rank_thr(u, RANK, SEARCH))
    pdl_exit(PDL)


@triton.jit
def _fused_step1_kernel(
    kt_ptr, idx_ptr, qhat_ptr, lens_ptr, thr_ptr, m_ptr, l_ptr, cnt_ptr, ckey_ptr, cpos_ptr,
    cp_ptr, S, NT, HKV, window, sinks, DH: tl.constexpr, R: tl.constexpr, RP: tl.constexpr,
    TILE: tl.constexpr, CAP: tl.constexpr, LEAN: tl.constexpr,
    PDL: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    tile = tl.program_id(1)
    seq_len = tl.load(lens_ptr + bh // HKV)
    cols = tile * TILE + _positions(TILE, seq_len, LEAN)
    u, logit = _kt_keys(
        kt_ptr + bh * DH * S,
        idx_ptr + bh * R,
        qhat_ptr + bh * R,
        cols,
        seq_len,
        S,
        window,
        sinks,
        R,
    )
    m = tl.max(logit, axis=0)
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    tl.store(m_ptr + bh * NT + tile, m)
    tl.store(l_ptr + bh * NT + tile, tl.sum(tl.exp(logit - m_safe), axis=0))
    cand = u >= tl.load(thr_ptr + bh)
    ci = cand.to(tl.int32)
    rank = tl.cumsum(ci, axis=0) - ci
    tl.store(cnt_ptr + bh * NT + tile, tl.sum(ci, axis=0))
    keep = cand & (rank < CAP)
    slot = (bh * NT + tile) * CAP + rank
    tl.store(ckey_ptr + slot, u, mask=keep)
    tl.store(cpos_ptr + slot, cols, mask=keep)
    tl.store(cp_ptr + slot, logit, mask=keep)
    pdl_exit(PDL)


@triton.jit
def _fused_exact_fallback(
    kt_ptr, idx_ptr, qhat_ptr, lens_ptr, out_row, alpha_ptr, bh, M, inv_z, S, HKV, K, window,
    sinks, DH: tl.constexpr, R: tl.constexpr, RP: tl.constexpr, CHF: tl.constexpr,
):  # fmt: skip
    """Exact radix-16 selection of one row, logits recomputed from ``K_t`` on every pass."""
    seq_len = tl.load(lens_ptr + bh // HKV)
    kt_row = kt_ptr + bh * DH * S
    idx_row = idx_ptr + bh * R
    q_row = qhat_ptr + bh * R
    offs = tl.arange(0, CHF)
    j = tl.arange(0, 16).to(tl.int64)
    prefix = tl.zeros((), tl.int64)
    for p in tl.static_range(8):
        cand_s = (prefix + (j << (28 - 4 * p)) - 2147483648).to(tl.int32)
        acc = tl.zeros((CHF, 16), tl.int32)
        for start in range(0, S, CHF):
            uu, _ = _kt_keys(kt_row, idx_row, q_row, start + offs, seq_len, S, window, sinks, R)
            acc += (uu[:, None] >= cand_s[None, :]).to(tl.int32)
        cn = tl.sum(acc, axis=0)
        prefix = prefix + (tl.max(tl.where(cn >= K, j, 0), axis=0) << (28 - 4 * p))
    T = (prefix - 2147483648).to(tl.int32)
    acc1 = tl.zeros((CHF,), tl.int32)
    for start in range(0, S, CHF):
        uu, _ = _kt_keys(kt_row, idx_row, q_row, start + offs, seq_len, S, window, sinks, R)
        acc1 += (uu > T).to(tl.int32)
    need = K - tl.sum(acc1, axis=0)
    carry_sel = tl.zeros((), tl.int32)
    carry_eq = tl.zeros((), tl.int32)
    alpha = tl.zeros((), tl.float32)
    for start in range(0, S, CHF):
        cols = start + offs
        uu, lg = _kt_keys(kt_row, idx_row, q_row, cols, seq_len, S, window, sinks, R)
        eq = (uu == T).to(tl.int32)
        eq_rank = tl.cumsum(eq, axis=0) - eq + carry_eq
        sel = (uu > T) | ((eq == 1) & (eq_rank < need))
        sel_i = sel.to(tl.int32)
        pos = tl.cumsum(sel_i, axis=0) - sel_i + carry_sel
        tl.store(out_row + pos, cols, mask=sel)
        alpha += tl.sum(tl.where(sel, tl.exp(lg - M) * inv_z, 0.0), axis=0)
        carry_sel += tl.sum(sel_i, axis=0)
        carry_eq += tl.sum(eq, axis=0)
    tl.store(alpha_ptr + bh, alpha)


@triton.jit
def _fused_final_kernel(
    kt_ptr, idx_ptr, qhat_ptr, lens_ptr, m_ptr, l_ptr, cnt_ptr, ckey_ptr, cpos_ptr, cp_ptr,
    out_idx_ptr, alpha_ptr, S, NT, HKV, K, window, sinks, DH: tl.constexpr, R: tl.constexpr,
    RP: tl.constexpr, NTP: tl.constexpr, CAP: tl.constexpr, SLOTS: tl.constexpr,
    CHF: tl.constexpr, LEAN: tl.constexpr, SEARCH: tl.constexpr,
    PDL: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    M2, iz2 = _global_stats(m_ptr, l_ptr, bh, NT, 1, 2, NTP)
    two = tl.arange(0, 2)
    M = tl.sum(tl.where(two == 0, M2, 0.0), axis=0)
    inv_z = tl.sum(tl.where(two == 0, iz2, 0.0), axis=0)
    t = tl.arange(0, NTP)
    cnt = tl.load(cnt_ptr + bh * NT + t, mask=t < NT, other=0)
    ok = (tl.sum(cnt, axis=0) >= K) & (tl.max(cnt, axis=0) <= CAP)
    out_row = out_idx_ptr + bh * K
    if ok:
        slots, sel, dest = _pick_candidates(cnt_ptr, ckey_ptr, bh, NT, K, CAP, SLOTS, SEARCH, LEAN)
        base = bh * NT * CAP
        tl.store(out_row + dest, tl.load(cpos_ptr + base + slots, mask=sel, other=0), mask=sel)
        lg = tl.load(cp_ptr + base + slots, mask=sel, other=float("-inf"))
        tl.store(alpha_ptr + bh, tl.sum(tl.exp(lg - M) * inv_z, axis=0))
    else:  # exact radix-16 search over the whole row, logits recomputed from K_t per pass
        _fused_exact_fallback(
            kt_ptr, idx_ptr, qhat_ptr, lens_ptr, out_row, alpha_ptr, bh, M, inv_z, S, HKV, K,
            window, sinks, DH, R, RP, CHF,
        )  # fmt: skip
    pdl_exit(PDL)


def fused_mha_plan(
    S: int, k: int, tile: int | None = None, samples: int | None = None, forced: int = 0
) -> dict:
    """Launch plan: ``TILE`` (step-1 tile = candidate chunk), ``NT``, ``CAP``, ``slots``, sample.

    ``forced``: window plus sink positions. They are candidates of the tiles that hold them (the
    last valid tile takes the whole window), so ``CAP`` also covers the expected candidates of
    such a tile plus the forced positions and four standard deviations.
    """
    tile = min(tile or 512, max(16, triton.next_power_of_2(S)))
    nt = triton.cdiv(S, tile)
    samp = samples or min(512, max(16, 1 << max(4, (max(1, S // 8)).bit_length() - 1)))
    mean = MARGIN * k * tile / S
    cap0 = min(tile, max(16, math.ceil(2 * mean), math.ceil(mean + forced + 4 * math.sqrt(mean))))
    slots = max(32, triton.next_power_of_2(nt * cap0))
    return {
        "TILE": tile,
        "NT": nt,
        "CAP": min(tile, slots // nt),
        "slots": slots,
        "SAMP": samp,
        "RUN": min(16, samp),
        "RANK": max(1, min(samp, math.ceil(MARGIN * k * samp / S))),
    }


def fused_mha_supported(G: int, S: int, k: int, tile: int | None = None, forced: int = 0) -> bool:
    """Whether :func:`select_fused_mha` applies (one head per group, candidate block fits)."""
    return G == 1 and S >= 128 and fused_mha_plan(S, k, tile, forced=forced)["slots"] <= MAX_SLOTS


def select_fused_mha(
    K_t: torch.Tensor,
    comp_idx: torch.Tensor,
    q_hat: torch.Tensor,
    seq_lens: torch.Tensor,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
    *,
    tile: int | None = None,
    num_warps: int | None = None,
    lean: bool = False,
    fallback_block: int = 256,
    hist_search: bool = False,
    radix4: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-2 of SparQ for ``G = 1``: approximate scores and exact top-k, no logits in memory.

    Args:
        K_t: ``(B, H, dh, S)`` keys, S contiguous (bf16/fp16/fp32).
        comp_idx: ``(B, H, r)`` selected query components ``i1``.
        q_hat: ``(B, H, 1, r)`` fp32 temperature-scaled query components.
        seq_lens: ``(B,)`` int64 live lengths.
        k, local_window, sink_tokens: as in :func:`sparq.kernels.select_topk`.
        tile, num_warps: launch overrides (step-1 tile, warps of the step-1 kernel).
        lean: keep the step-1 and final kernels in one register layout (scalar K_t loads per
            thread, no shared-memory layout conversions before the scattered candidate stores).
        fallback_block: positions per step of the exact fallback search (fewer registers for the
            final kernel's common path when smaller).
        hist_search: the sample threshold and the exact k-th key by four radix-256
            ``tl.histogram`` passes instead of 32 bitwise block counts (same result).
        radix4: both searches by 16 radix-4 passes with packed counts (takes precedence).

    Returns:
        ``idx`` ``(B, H, k)`` int32 in increasing order and ``alpha`` ``(B, H, 1)`` fp32, the same
        as :func:`sparq.kernels.approx_logits` followed by :func:`sparq.kernels.select_topk`
        (up to fp32 rounding of the logits).
    """
    B, H, dh, S = K_t.shape
    if q_hat.shape[2] != 1:
        raise ValueError(f"select_fused_mha needs one query head per KV head, got {q_hat.shape[2]}")
    if not 1 <= k <= S:
        raise ValueError(f"k must be in [1, S={S}], got {k}")
    plan = fused_mha_plan(S, k, tile, forced=max(0, local_window) + max(0, sink_tokens))
    if plan["slots"] > MAX_SLOTS or S < 128:
        raise ValueError(
            f"S={S}, k={k}: candidate block too large or row too short; use select_topk"
        )
    r = comp_idx.shape[-1]
    rp = max(2, triton.next_power_of_2(r))
    rows, nt, cap = B * H, plan["NT"], plan["CAP"]
    dev = K_t.device
    idx32 = comp_idx.to(torch.int32).contiguous()
    qh = q_hat.contiguous()
    search = 3 if radix4 else 2 if hist_search else 0
    thr = torch.empty(rows, device=dev, dtype=torch.int32)
    tmax = torch.empty(rows, nt, device=dev, dtype=torch.float32)
    tsum = torch.empty_like(tmax)
    cnt = torch.empty(rows, nt, device=dev, dtype=torch.int32)
    ckey = torch.empty(rows, nt * cap, device=dev, dtype=torch.int32)
    cpos = torch.empty_like(ckey)
    cp = torch.empty(rows, nt * cap, device=dev, dtype=torch.float32)
    idx = torch.empty(B, H, k, device=dev, dtype=torch.int32)
    alpha = torch.empty(B, H, 1, device=dev, dtype=torch.float32)
    _fused_sample_kernel[(rows,)](
        K_t, idx32, qh, seq_lens, thr, S, H, local_window, sink_tokens, plan["RANK"], DH=dh, R=r,
        RP=rp, SAMP=plan["SAMP"], RUN=plan["RUN"], SEARCH=search, num_warps=4, **pdl_kw(),
    )  # fmt: skip
    _fused_step1_kernel[(rows, nt)](
        K_t, idx32, qh, seq_lens, thr, tmax, tsum, cnt, ckey, cpos, cp, S, nt, H, local_window,
        sink_tokens, DH=dh, R=r, RP=rp, TILE=plan["TILE"], CAP=cap, LEAN=lean,
        num_warps=num_warps or 4, **pdl_kw(),
    )  # fmt: skip
    _fused_final_kernel[(rows,)](
        K_t, idx32, qh, seq_lens, tmax, tsum, cnt, ckey, cpos, cp, idx, alpha, S, nt, H, k,
        local_window, sink_tokens, DH=dh, R=r, RP=rp, NTP=max(2, triton.next_power_of_2(nt)),
        CAP=cap, SLOTS=plan["slots"], CHF=min(fallback_block, max(16, triton.next_power_of_2(S))),
        LEAN=lean, SEARCH=search, num_warps=_final_warps(plan["slots"]), **pdl_kw(),
    )  # fmt: skip
    return idx, alpha
