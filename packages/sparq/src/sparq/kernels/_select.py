"""Exact top-k selection of SparQ positions (paper Alg. 1, step 2 index choice) and alpha.

One program per (batch, KV head). It merges the per-tile softmax statistics of step 1 into the
global max ``M_h`` and normaliser ``Z_h`` of every query head, forms the selection key

    key[s] = sum_h exp(logit_h[s] - M_h) / Z_h        (the group-summed approximate softmax)

(for a single head the logit itself, which orders positions identically), forces the local window
and the sink tokens to ``+inf`` and invalid positions to ``-inf``, and finds the exact k-th largest
key with a 4-pass radix select (8 bits per pass, histograms over order-preserving integer keys).
A final pass compacts the winners in increasing position order (ties at the threshold go to the
lowest positions) and accumulates ``alpha_h = sum_{selected} exp(logit_h - M_h) / Z_h``.

No per-position data leave the program except the k selected indices.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["select_topk", "select_topk_reference"]


@triton.jit
def _ordered_key(x):
    """fp32 -> int64 in [0, 2^32) with the same order (-inf smallest, +inf largest)."""
    i = x.to(tl.int32, bitcast=True)
    i = tl.where(i < 0, i ^ 0x7FFFFFFF, i)
    return i.to(tl.int64) + 2147483648


@triton.jit
def _chunk_key(
    logit_row,
    key_row,
    cols,
    heads,
    M,
    inv_z,
    seq_len,
    S,
    window,
    sinks,
    G: tl.constexpr,
    FROM_LOGITS: tl.constexpr,
):
    inb = cols < S
    if G == 1:
        key = tl.load(logit_row + cols, mask=inb, other=float("-inf"))
    elif FROM_LOGITS:
        hmask = heads < G
        lg = tl.load(
            logit_row + heads[:, None].to(tl.int64) * S + cols[None, :],
            mask=hmask[:, None] & inb[None, :],
            other=float("-inf"),
        )
        p = tl.exp(lg - M[:, None]) * inv_z[:, None]
        key = tl.sum(tl.where(hmask[:, None], p, 0.0), axis=0)
    else:
        key = tl.load(key_row + cols, mask=inb, other=float("-inf"))
    valid = cols < seq_len
    forced = valid & ((cols < sinks) | (cols >= seq_len - window))
    key = tl.where(forced, float("inf"), key)
    key = tl.where(valid, key, float("-inf"))
    return key


@triton.jit
def _select_kernel(
    logit_ptr,  # (BH, G, S) fp32
    m_ptr,  # (BH, G, NT)
    l_ptr,  # (BH, G, NT)
    lens_ptr,  # (B,) int64
    keybuf_ptr,  # (BH, S) fp32 scratch (used when G > 1)
    out_idx_ptr,  # (BH, K) int32
    alpha_ptr,  # (BH, G) fp32
    S,
    NT,
    HKV,
    K,
    window,
    sinks,
    G: tl.constexpr,
    GP: tl.constexpr,
    NTP: tl.constexpr,
    CH: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)
    b = bh // HKV
    seq_len = tl.load(lens_ptr + b)
    heads = tl.arange(0, GP)
    hmask = heads < G

    # ---- global softmax statistics per head from the tile statistics
    t = tl.arange(0, NTP)
    soff = bh * G * NT + heads[:, None] * NT + t[None, :]
    smask = hmask[:, None] & (t[None, :] < NT)
    tm = tl.load(m_ptr + soff, mask=smask, other=float("-inf"))
    tsum = tl.load(l_ptr + soff, mask=smask, other=0.0)
    M = tl.max(tm, axis=1)
    M = tl.where(float("-inf") == M, 0.0, M)
    Z = tl.sum(tsum * tl.exp(tm - M[:, None]), axis=1)
    inv_z = tl.where(Z > 0, 1.0 / tl.maximum(Z, 1e-30), 0.0)

    logit_row = logit_ptr + bh * G * S
    key_row = keybuf_ptr + bh * S
    offs = tl.arange(0, CH)

    # ---- pass 0 (G > 1): materialise the group-summed key once (read back from L2 later)
    if G > 1:
        for start in range(0, S, CH):
            cols = start + offs
            key = _chunk_key(
                logit_row, key_row, cols, heads, M, inv_z, seq_len, S, window, sinks, G, True
            )
            tl.store(key_row + cols, key, mask=cols < S)

    # ---- radix select of the K-th largest ordered key, 8 bits per pass from the top
    bins = tl.arange(0, 512)
    prefix = tl.zeros((), tl.int64)
    need = K
    for p in tl.static_range(4):
        shift = 24 - 8 * p
        hist = tl.zeros((512,), tl.int32)
        for start in range(0, S, CH):
            cols = start + offs
            key = _chunk_key(
                logit_row, key_row, cols, heads, M, inv_z, seq_len, S, window, sinks, G, False
            )
            u = _ordered_key(key)
            match = ((u >> (shift + 8)) == (prefix >> (shift + 8))) & (cols < S)
            digit = ((u >> shift) & 255).to(tl.int32)
            hist += tl.histogram(tl.where(match, digit, 256), 512)
        hist = tl.where(bins < 256, hist, 0)
        total = tl.sum(hist, axis=0)
        cnt_ge = total - tl.cumsum(hist, axis=0) + hist  # matches with digit >= d
        dstar = tl.max(tl.where((cnt_ge >= need) & (bins < 256), bins, -1), axis=0)
        cnt_gt = tl.sum(tl.where(bins > dstar, hist, 0), axis=0)
        need = need - cnt_gt
        prefix = prefix | (dstar.to(tl.int64) << shift)

    # ---- compaction in position order + alpha
    sel_carry = tl.zeros((), tl.int32)
    eq_carry = tl.zeros((), tl.int32)
    alpha = tl.zeros((GP,), tl.float32)
    for start in range(0, S, CH):
        cols = start + offs
        inb = cols < S
        key = _chunk_key(
            logit_row, key_row, cols, heads, M, inv_z, seq_len, S, window, sinks, G, False
        )
        u = _ordered_key(key)
        gt = (u > prefix) & inb
        eq = ((u == prefix) & inb).to(tl.int32)
        eq_rank = tl.cumsum(eq, axis=0) - eq + eq_carry
        sel = gt | ((eq == 1) & (eq_rank < need))
        sel_i = sel.to(tl.int32)
        pos = tl.cumsum(sel_i, axis=0) - sel_i + sel_carry
        tl.store(out_idx_ptr + bh * K + pos, cols, mask=sel)
        eq_carry += tl.sum(eq, axis=0)
        sel_carry += tl.sum(sel_i, axis=0)
        lg = tl.load(
            logit_row + heads[:, None].to(tl.int64) * S + cols[None, :],
            mask=hmask[:, None] & sel[None, :],
            other=float("-inf"),
        )
        pr = tl.exp(lg - M[:, None]) * inv_z[:, None]
        alpha += tl.sum(tl.where(sel[None, :] & hmask[:, None], pr, 0.0), axis=1)
    tl.store(alpha_ptr + bh * G + heads, alpha, mask=hmask)


def select_topk(
    logits: torch.Tensor,
    tile_max: torch.Tensor,
    tile_sum: torch.Tensor,
    seq_lens: torch.Tensor,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
    *,
    chunk: int | None = None,
    num_warps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k positions per (batch, KV head) by group-summed approximate softmax.

    Args:
        logits: ``(B, Hkv, G, S)`` fp32 approximate logits (``-inf`` at invalid positions).
        tile_max, tile_sum: ``(B, Hkv, G, NT)`` per-tile softmax statistics from step 1.
        seq_lens: ``(B,)`` int64 live lengths.
        k: number of positions to select (``1 <= k <= S``); window and sinks count towards k.
        local_window: the last ``local_window`` valid positions are always selected.
        sink_tokens: the first ``sink_tokens`` positions are always selected.
        chunk, num_warps: launch overrides for tuning (positions per loop step, warps).

    Returns:
        ``idx`` ``(B, Hkv, k)`` int32 selected positions in increasing order (entries may point to
        invalid positions only when ``k`` exceeds the live length), and ``alpha`` ``(B, Hkv, G)``
        fp32, the approximate softmax mass of the selected positions per query head.
    """
    B, Hkv, G, S = logits.shape
    nt = tile_max.shape[-1]
    if not 1 <= k <= S:
        raise ValueError(f"k must be in [1, S={S}], got {k}")
    dev = logits.device
    idx = torch.empty(B, Hkv, k, device=dev, dtype=torch.int32)
    alpha = torch.empty(B, Hkv, G, device=dev, dtype=torch.float32)
    keybuf = torch.empty(B, Hkv, S if G > 1 else 1, device=dev, dtype=torch.float32)
    ch = min(chunk or (4096 if G == 1 else 2048), max(16, triton.next_power_of_2(S)))
    _select_kernel[(B * Hkv,)](
        logits,
        tile_max,
        tile_sum,
        seq_lens,
        keybuf,
        idx,
        alpha,
        S,
        nt,
        Hkv,
        k,
        local_window,
        sink_tokens,
        G=G,
        GP=max(2, triton.next_power_of_2(G)),
        NTP=max(2, triton.next_power_of_2(nt)),
        CH=ch,
        num_warps=num_warps or 8,
    )
    return idx, alpha


def select_topk_reference(
    logits: torch.Tensor,
    seq_lens: torch.Tensor,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pure-torch reference: returns ``(idx_sorted, alpha, key)`` with ``key`` ``(B, Hkv, S)``.

    ``key`` is the group-summed approximate softmax with forced positions at ``+inf`` and invalid
    positions at ``-inf``; tests compare selections through it so that ties do not matter.
    """
    B, Hkv, G, S = logits.shape
    p = torch.softmax(logits.float(), dim=-1).nan_to_num(0.0)  # (B,Hkv,G,S)
    key = p.sum(2)
    pos = torch.arange(S, device=logits.device)[None, :]
    valid = pos < seq_lens[:, None]
    forced = valid & ((pos < sink_tokens) | (pos >= seq_lens[:, None] - local_window))
    key = key.masked_fill(forced[:, None, :], float("inf"))
    key = key.masked_fill(~valid[:, None, :], float("-inf"))
    idx = key.topk(k, dim=-1).indices.sort(dim=-1).values
    alpha = p.gather(-1, idx[:, :, None, :].expand(B, Hkv, G, k)).sum(-1)
    return idx, alpha, key
