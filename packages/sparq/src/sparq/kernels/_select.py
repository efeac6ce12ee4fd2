"""Exact top-k selection of SparQ positions (paper Alg. 1, step 2 index choice) and alpha.

One program per (batch, KV head). It merges the per-tile softmax statistics of step 1 into the
global max ``M_h`` and normaliser ``Z_h`` of every query head, forms the selection key

    key[s] = sum_h exp(logit_h[s] - M_h) / Z_h        (the group-summed approximate softmax)

(for a single head the logit itself, which orders positions identically), forces the local window
and the sink tokens to ``+inf`` and invalid positions to ``-inf``, and finds the exact k-th largest
key ``T`` over order-preserving int32 images of the keys:

* rows of up to ``REG_MAX`` positions stay in registers and ``T`` is built bit by bit (32
  compare-and-count rounds, no memory traffic);
* longer rows use a radix-16 search: each of 8 passes over an int32 key scratch (L2-resident)
  counts the keys above 16 candidate thresholds at once, accumulating elementwise so that a pass
  has a single block reduction.

On the GPU the warps and chunk sizes are autotuned once per ``(S, k)``.

A final pass compacts the winners in increasing position order (ties at ``T`` go to the lowest
positions, as in the reference's stable sort) and accumulates
``alpha_h = sum_{selected} exp(logit_h - M_h) / Z_h``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import F32DOT, fastest

__all__ = ["select_topk", "select_topk_reference"]

REG_MAX = 16384
_INT_MIN = -2147483648


@triton.jit
def _ordered(x):
    """fp32 -> int32 with the same (signed) order: -inf < ... < -0 < +0 < ... < +inf."""
    i = x.to(tl.int32, bitcast=True)
    return tl.where(i < 0, i ^ 0x7FFFFFFF, i)


@triton.jit
def _global_stats(m_ptr, l_ptr, bh, NT, G: tl.constexpr, GP: tl.constexpr, NTP: tl.constexpr):
    heads = tl.arange(0, GP)
    t = tl.arange(0, NTP)
    soff = bh * G * NT + heads[:, None] * NT + t[None, :]
    smask = (heads[:, None] < G) & (t[None, :] < NT)
    tm = tl.load(m_ptr + soff, mask=smask, other=float("-inf"))
    ts = tl.load(l_ptr + soff, mask=smask, other=0.0)
    M = tl.max(tm, axis=1)
    M = tl.where(float("-inf") == M, 0.0, M)
    Z = tl.sum(ts * tl.exp(tm - M[:, None]), axis=1)
    inv_z = tl.where(Z > 0, 1.0 / tl.maximum(Z, 1e-30), 0.0)
    return M, inv_z


@triton.jit
def _head_scalar(vec, heads, h):
    return tl.sum(tl.where(heads == h, vec, 0.0), axis=0)


@triton.jit
def _keys(logit_row, cols, heads, M, inv_z, seq_len, S, window, sinks, G: tl.constexpr):
    """Ordered int32 selection keys of positions ``cols`` (INT_MIN beyond S)."""
    inb = cols < S
    if G == 1:
        key = tl.load(logit_row + cols, mask=inb, other=float("-inf"))
    else:
        key = tl.zeros(cols.shape, tl.float32)
        for h in tl.static_range(G):
            lg = tl.load(logit_row + h * S + cols, mask=inb, other=float("-inf"))
            key += tl.exp(lg - _head_scalar(M, heads, h)) * _head_scalar(inv_z, heads, h)
    valid = cols < seq_len
    forced = valid & ((cols < sinks) | (cols >= seq_len - window))
    key = tl.where(forced, float("inf"), key)
    key = tl.where(valid, key, float("-inf"))
    return tl.where(inb, _ordered(key), -2147483648)


@triton.jit
def _emit(
    u, T, need, cols, carry_sel, carry_eq, out_row, logit_row, alpha, heads, M, inv_z, S,
    G: tl.constexpr,
):  # fmt: skip
    """Compact one block of winners (in position order) and add their mass to alpha."""
    gt = u > T
    eq = (u == T).to(tl.int32)
    eq_rank = tl.cumsum(eq, axis=0) - eq + carry_eq
    sel = gt | ((eq == 1) & (eq_rank < need))
    sel_i = sel.to(tl.int32)
    pos = tl.cumsum(sel_i, axis=0) - sel_i + carry_sel
    tl.store(out_row + pos, cols, mask=sel)
    for h in tl.static_range(G):
        lg = tl.load(logit_row + h * S + cols, mask=sel, other=float("-inf"))
        p = tl.exp(lg - _head_scalar(M, heads, h)) * _head_scalar(inv_z, heads, h)
        alpha += tl.where(heads == h, tl.sum(tl.where(sel, p, 0.0), axis=0), 0.0)
    return carry_sel + tl.sum(sel_i, axis=0), carry_eq + tl.sum(eq, axis=0), alpha


@triton.jit
def _select_reg_kernel(
    logit_ptr, m_ptr, l_ptr, lens_ptr, out_idx_ptr, alpha_ptr, S, NT, HKV, K, window, sinks,
    G: tl.constexpr, GP: tl.constexpr, NTP: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    bh = tl.program_id(0).to(tl.int64)
    seq_len = tl.load(lens_ptr + bh // HKV)
    heads = tl.arange(0, GP)
    M, inv_z = _global_stats(m_ptr, l_ptr, bh, NT, G, GP, NTP)
    logit_row = logit_ptr + bh * G * S
    cols = tl.arange(0, BLOCK)
    u = _keys(logit_row, cols, heads, M, inv_z, seq_len, S, window, sinks, G)
    # T = largest t with count(u >= t) >= K, built from the most significant bit down
    prefix = tl.zeros((), tl.int64)
    for b in tl.static_range(31, -1, -1):
        cand = prefix | (1 << b)
        cnt = tl.sum((u >= (cand - 2147483648).to(tl.int32)).to(tl.int32), axis=0)
        prefix = tl.where(cnt >= K, cand, prefix)
    T = (prefix - 2147483648).to(tl.int32)
    need = K - tl.sum((u > T).to(tl.int32), axis=0)
    zero = tl.zeros((), tl.int32)
    alpha = tl.zeros((GP,), tl.float32)
    _, _, alpha = _emit(
        u, T, need, cols, zero, zero, out_idx_ptr + bh * K, logit_row, alpha, heads, M, inv_z,
        S, G,
    )  # fmt: skip
    tl.store(alpha_ptr + bh * G + heads, alpha, mask=heads < G)


@triton.jit
def _select_chunk_kernel(
    logit_ptr, m_ptr, l_ptr, lens_ptr, key_ptr, out_idx_ptr, alpha_ptr, S, NT, HKV, K, window,
    sinks, G: tl.constexpr, GP: tl.constexpr, NTP: tl.constexpr, CH: tl.constexpr,
    CH2: tl.constexpr,
):  # fmt: skip
    bh = tl.program_id(0).to(tl.int64)
    seq_len = tl.load(lens_ptr + bh // HKV)
    heads = tl.arange(0, GP)
    M, inv_z = _global_stats(m_ptr, l_ptr, bh, NT, G, GP, NTP)
    logit_row = logit_ptr + bh * G * S
    key_row = key_ptr + bh * S
    offs = tl.arange(0, CH)
    for start in range(0, S, CH):
        cols = start + offs
        u = _keys(logit_row, cols, heads, M, inv_z, seq_len, S, window, sinks, G)
        tl.store(key_row + cols, u, mask=cols < S)
    # radix-16 search: 4 bits of T per pass, 16 candidate thresholds counted at once
    j = tl.arange(0, 16).to(tl.int64)
    prefix = tl.zeros((), tl.int64)
    for p in tl.static_range(8):
        cand = prefix + (j << (28 - 4 * p))
        cand_s = (cand - 2147483648).to(tl.int32)
        # counts accumulate elementwise; one block reduction per pass (no per-chunk barriers)
        acc = tl.zeros((CH, 16), tl.int32)
        for start in range(0, S, CH):
            cols = start + offs
            u = tl.load(key_row + cols, mask=cols < S, other=-2147483648)
            acc += (u[:, None] >= cand_s[None, :]).to(tl.int32)
        cnt = tl.sum(acc, axis=0)
        jstar = tl.max(tl.where(cnt >= K, j, 0), axis=0)
        prefix = prefix + (jstar << (28 - 4 * p))
    T = (prefix - 2147483648).to(tl.int32)
    acc1 = tl.zeros((CH,), tl.int32)
    for start in range(0, S, CH):
        cols = start + offs
        u = tl.load(key_row + cols, mask=cols < S, other=-2147483648)
        acc1 += (u > T).to(tl.int32)
    need = K - tl.sum(acc1, axis=0)
    offs2 = tl.arange(0, CH2)
    carry_sel = tl.zeros((), tl.int32)
    carry_eq = tl.zeros((), tl.int32)
    alpha = tl.zeros((GP,), tl.float32)
    for start in range(0, S, CH2):
        cols = start + offs2
        u = tl.load(key_row + cols, mask=cols < S, other=-2147483648)
        carry_sel, carry_eq, alpha = _emit(
            u, T, need, cols, carry_sel, carry_eq, out_idx_ptr + bh * K, logit_row, alpha,
            heads, M, inv_z, S, G,
        )  # fmt: skip
    tl.store(alpha_ptr + bh * G + heads, alpha, mask=heads < G)


if F32DOT:  # interpreter: fixed launch parameters
    _reg_launch = _select_reg_kernel
    _chunk_launch = _select_chunk_kernel
else:  # GPU: pick warps / chunk sizes once per (S, K) (before any CUDA-graph capture)
    _reg_launch = triton.autotune(
        configs=[triton.Config({}, num_warps=w) for w in (4, 8, 16)], key=["S", "K"]
    )(_select_reg_kernel)
    _chunk_launch = triton.autotune(
        configs=[
            triton.Config({"CH": 1024, "CH2": 4096}, num_warps=16),
            triton.Config({"CH": 512, "CH2": 2048}, num_warps=8),
        ],
        key=["S", "K"],
    )(_select_chunk_kernel)


_PATH_CACHE: dict[tuple, bool] = {}
_TUNED: set[tuple] = set()


def _register_path_is_faster(logits, tile_max, tile_sum, seq_lens, k) -> bool:
    """Time both selection paths once per shape (eagerly, never inside a CUDA-graph capture)."""
    B, Hkv, G, S = logits.shape
    key = (B * Hkv, G, S, k, logits.device.index)
    if key not in _PATH_CACHE:
        if torch.cuda.is_current_stream_capturing():
            return False  # no timing during capture: take the path that suits long rows

        def run(chunked: bool):
            return lambda: select_topk(
                logits, tile_max, tile_sum, seq_lens, k, force_chunked=chunked, _timed=True
            )

        _PATH_CACHE[key] = fastest({"register": run(False), "chunked": run(True)}) == "register"
    return _PATH_CACHE[key]


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
    force_chunked: bool = False,
    _timed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k positions per (batch, KV head) by group-summed approximate softmax.

    Args:
        logits: ``(B, Hkv, G, S)`` fp32 approximate logits (``-inf`` at invalid positions).
        tile_max, tile_sum: ``(B, Hkv, G, NT)`` per-tile softmax statistics from step 1.
        seq_lens: ``(B,)`` int64 live lengths.
        k: number of positions to select (``1 <= k <= S``); window and sinks count towards k.
        local_window: the last ``local_window`` valid positions are always selected.
        sink_tokens: the first ``sink_tokens`` positions are always selected.
        chunk, num_warps: launch overrides for tuning; ``force_chunked`` uses the long-row path.
            Otherwise, on the GPU, the faster path for rows of <= ``REG_MAX`` positions is timed
            once per shape on the first (eager) call.

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
    common = {
        "G": G,
        "GP": max(2, triton.next_power_of_2(G)),
        "NTP": max(2, triton.next_power_of_2(nt)),
    }
    block = max(16, triton.next_power_of_2(S))
    tuned = not F32DOT and chunk is None and num_warps is None
    tkey = (B * Hkv, G, S, k, block <= REG_MAX and not force_chunked)
    if tuned and tkey not in _TUNED and torch.cuda.is_current_stream_capturing():
        tuned = False  # never benchmark inside a capture: fixed launch parameters instead
    use_reg = block <= REG_MAX and not force_chunked
    if use_reg and tuned and not _timed:
        use_reg = _register_path_is_faster(logits, tile_max, tile_sum, seq_lens, k)
    if use_reg:
        args = (logits, tile_max, tile_sum, seq_lens, idx, alpha, S, nt, Hkv, k, local_window,
                sink_tokens)  # fmt: skip
        if tuned:
            _reg_launch[(B * Hkv,)](*args, BLOCK=block, **common)
        else:
            _select_reg_kernel[(B * Hkv,)](*args, BLOCK=block, num_warps=num_warps or 8, **common)
    else:
        keys = torch.empty(B, Hkv, S, device=dev, dtype=torch.int32)
        args = (logits, tile_max, tile_sum, seq_lens, keys, idx, alpha, S, nt, Hkv, k,
                local_window, sink_tokens)  # fmt: skip
        if tuned:
            _chunk_launch[(B * Hkv,)](*args, **common)
        else:
            ch = min(chunk or 1024, block)
            _select_chunk_kernel[(B * Hkv,)](
                *args, CH=ch, CH2=min(4 * ch, block), num_warps=num_warps or 8, **common
            )
    if tuned:
        _TUNED.add(tkey)
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


def select_topk_torch(
    logits: torch.Tensor,
    tile_max: torch.Tensor,
    tile_sum: torch.Tensor,
    seq_lens: torch.Tensor,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`select_topk`, built on ``torch.topk`` (no host sync, capturable).

    The selection key is the group-summed approximate softmax (for one head per group the logit
    itself, which orders positions identically); the global max and normaliser per head come from
    step 1's tile statistics. On long rows with few (batch, KV head) rows per SM, the library's
    radix select can beat the single-program Triton selection; :func:`sparq_attention_triton`
    times both once per shape and keeps the faster.

    Returns:
        ``idx`` ``(B, Hkv, k)`` int32 in increasing position order and ``alpha`` ``(B, Hkv, G)``.
    """
    B, Hkv, G, S = logits.shape
    if not 1 <= k <= S:
        raise ValueError(f"k must be in [1, S={S}], got {k}")
    M = tile_max.amax(-1, keepdim=True)  # (B, Hkv, G, 1)
    M = torch.where(torch.isinf(M), torch.zeros_like(M), M)
    Z = (tile_sum * torch.exp(tile_max - M)).sum(-1, keepdim=True)
    inv_z = torch.where(Z > 0, 1.0 / Z.clamp_min(1e-30), torch.zeros_like(Z))
    key = logits[:, :, 0] if G == 1 else (torch.exp(logits - M) * inv_z).sum(2)  # (B, Hkv, S)
    pos = torch.arange(S, device=logits.device)
    lens = seq_lens[:, None]
    valid = pos[None, :] < lens
    forced = valid & ((pos[None, :] < sink_tokens) | (pos[None, :] >= lens - local_window))
    key = key.masked_fill(forced[:, None, :], float("inf"))
    key = key.masked_fill(~valid[:, None, :], float("-inf"))
    idx = key.topk(k, dim=-1, sorted=False).indices.sort(dim=-1).values  # (B, Hkv, k) int64
    lg = logits.gather(-1, idx[:, :, None, :].expand(B, Hkv, G, k))
    alpha = (torch.exp(lg - M) * inv_z).sum(-1)
    return idx.to(torch.int32), alpha
