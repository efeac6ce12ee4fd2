"""Step 1 of SparQ decode: approximate logits from r gathered rows of K_t (paper Alg. 1, step 1).

One program handles one S-tile of one (batch, KV head) pair. It gathers the r selected rows of
``K_t`` (each row is contiguous along S, so every load is a long coalesced run), computes the
approximate logits of all ``G`` query heads of the group with one small matrix product, masks
positions ``>= seq_len`` and writes

* the per-tile softmax statistics (running max ``m`` and ``sum exp(logit - m)``) per head, and
* the logits themselves (fp32, one value per query head and position) to a scratch buffer that the
  selection kernel consumes from L2.

The query components are pre-scaled by the temperature correction (``q_hat = q[i1] * scale_hat``)
so the kernel does pure multiply-adds.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import F32DOT, l2_hints, load_hint, pdl_enter, pdl_exit, pdl_kw, store_hint
from ._prep import _prep_sort_row

__all__ = ["approx_logits", "approx_logits_reference"]


@triton.jit
def _approx_logits_kernel(
    kt_ptr,  # (BH, dh, S) K_t, S contiguous
    idx_ptr,  # (BH, r) int32 selected components
    qhat_ptr,  # (BH, G, r) fp32 scaled query components
    lens_ptr,  # (B,) int64 live lengths
    logit_ptr,  # (BH, G, S) fp32 out
    m_ptr,  # (BH, G, NT) fp32 out: per-tile max
    l_ptr,  # (BH, G, NT) fp32 out: per-tile sum of exp(logit - max)
    S,
    NT,
    HKV,
    DH: tl.constexpr,
    R: tl.constexpr,
    RP: tl.constexpr,
    G: tl.constexpr,
    GP: tl.constexpr,
    TILE: tl.constexpr,
    F32DOT: tl.constexpr,
    ROW1: tl.constexpr,
    PDL: tl.constexpr = False,
):
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    tile = tl.program_id(1)
    b = bh // HKV
    seq_len = tl.load(lens_ptr + b)

    rows = tl.arange(0, RP)
    heads = tl.arange(0, GP)
    cols = tile * TILE + tl.arange(0, TILE)
    rmask = rows < R
    hmask = heads < G

    comp = tl.load(idx_ptr + bh * R + rows, mask=rmask, other=0).to(tl.int64)
    qh = tl.load(
        qhat_ptr + bh * G * R + heads[:, None] * R + rows[None, :],
        mask=hmask[:, None] & rmask[None, :],
        other=0.0,
    )
    kt_base = kt_ptr + bh * DH * S
    kt = tl.load(
        kt_base + comp[:, None] * S + cols[None, :],
        mask=rmask[:, None] & (cols[None, :] < S),
        other=0.0,
    )
    # Split the fp32 query into two operands of K's dtype: hi + lo carries ~16 mantissa bits,
    # so the tensor-core product matches an fp32 dot product to ~1e-5 relative.
    if F32DOT:
        logits = tl.dot(qh, kt.to(tl.float32))
    else:
        q_hi = qh.to(kt.dtype)
        q_lo = (qh - q_hi.to(tl.float32)).to(kt.dtype)
        logits = tl.dot(q_lo, kt, acc=tl.dot(q_hi, kt))  # (GP, TILE) fp32

    if ROW1:
        # one head (G == 1): the padded rows are -inf, so the column max is head 0's row; the
        # softmax statistics then cost TILE exponentials instead of 16 * TILE
        row = tl.max(tl.where(hmask[:, None], logits, float("-inf")), axis=0)
        row = tl.where(cols < seq_len, row, float("-inf"))
        m1 = tl.max(row, axis=0)
        m1_safe = tl.where(m1 == float("-inf"), 0.0, m1)
        tl.store(logit_ptr + bh * S + cols, row, mask=cols < S)
        tl.store(m_ptr + bh * NT + tile, m1)
        tl.store(l_ptr + bh * NT + tile, tl.sum(tl.exp(row - m1_safe), axis=0))
    else:
        valid = (cols < seq_len)[None, :] & hmask[:, None]
        logits = tl.where(valid, logits, float("-inf"))
        m = tl.max(logits, axis=1)
        m_safe = tl.where(m == float("-inf"), 0.0, m)
        l = tl.sum(tl.exp(logits - m_safe[:, None]), axis=1)
        tl.store(
            logit_ptr + bh * G * S + heads[:, None].to(tl.int64) * S + cols[None, :],
            logits,
            mask=hmask[:, None] & (cols[None, :] < S),
        )
        stat_off = bh * G * NT + heads * NT + tile
        tl.store(m_ptr + stat_off, m, mask=hmask)
        tl.store(l_ptr + stat_off, l, mask=hmask)
    pdl_exit(PDL)


@triton.jit
def _approx_logits_fma_kernel(
    kt_ptr, idx_ptr, qhat_ptr, lens_ptr, logit_ptr, m_ptr, l_ptr, S, NT, HKV,
    DH: tl.constexpr, R: tl.constexpr, RP: tl.constexpr, G: tl.constexpr, TILE: tl.constexpr,
    PDL: tl.constexpr = False,
):  # fmt: skip
    """Same outputs as ``_approx_logits_kernel`` with fp32 multiply-adds per head (no tensor-core
    product, so no padding of the G heads to 16 rows: for small groups it does G/16 of the work
    and exponentials)."""
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    tile = tl.program_id(1)
    seq_len = tl.load(lens_ptr + bh // HKV)
    rows = tl.arange(0, RP)
    cols = tile * TILE + tl.arange(0, TILE)
    rmask = rows < R
    comp = tl.load(idx_ptr + bh * R + rows, mask=rmask, other=0).to(tl.int64)
    kt = tl.load(
        kt_ptr + bh * DH * S + comp[:, None] * S + cols[None, :],
        mask=rmask[:, None] & (cols[None, :] < S),
        other=0.0,
    ).to(tl.float32)
    valid = cols < seq_len
    for h in tl.static_range(G):
        qh = tl.load(qhat_ptr + (bh * G + h) * R + rows, mask=rmask, other=0.0)
        logits = tl.sum(qh[:, None] * kt, axis=0)
        logits = tl.where(valid, logits, float("-inf"))
        m = tl.max(logits, axis=0)
        m_safe = tl.where(m == float("-inf"), 0.0, m)
        l = tl.sum(tl.exp(logits - m_safe), axis=0)
        tl.store(logit_ptr + (bh * G + h) * S + cols, logits, mask=cols < S)
        tl.store(m_ptr + (bh * G + h) * NT + tile, m)
        tl.store(l_ptr + (bh * G + h) * NT + tile, l)
    pdl_exit(PDL)


@triton.jit
def _approx_logits_rows_kernel(
    kt_ptr, idx_ptr, qhat_ptr, lens_ptr, logit_ptr, m_ptr, l_ptr, S, NT, HKV,
    DH: tl.constexpr, R: tl.constexpr, G: tl.constexpr, GP: tl.constexpr, TILE: tl.constexpr,
    PDL: tl.constexpr = False, L2: tl.constexpr = False, TM: tl.constexpr = False,
    q_ptr=None, scale=1.0, PREP: tl.constexpr = False, DHP: tl.constexpr = 2,
):  # fmt: skip
    """Same outputs as ``_approx_logits_kernel`` by a loop over the r gathered rows: each row
    of K_t is loaded as one contiguous (TILE,) run and multiply-added into a (G, TILE) fp32
    accumulator, so there is no reduction across threads and no padding of the heads to 16
    rows (the exponentials of the statistics cover only the G real heads). ``L2``: K_t read
    with ``evict_first``, the logits written with ``evict_last``. ``TM`` (tile-major grid
    ``(NT, rows)``): consecutive programs take consecutive tiles of one row, so the programs
    running together stream through neighbouring addresses. ``PREP``: no query-preparation
    kernel before this one; every program prepares its row's query from ``q_ptr`` itself (the
    same values in every program of the row), stores ``i1``/``q_hat`` and reads them back."""
    pdl_enter(PDL)
    if TM:
        bh = tl.program_id(1).to(tl.int64)
        tile = tl.program_id(0)
    else:
        bh = tl.program_id(0).to(tl.int64)
        tile = tl.program_id(1)
    if PREP:
        _prep_sort_row(q_ptr, idx_ptr, qhat_ptr, scale, R, bh, G, GP, DH, DHP)
        tl.debug_barrier()  # read back below by other threads of this program
    seq_len = tl.load(lens_ptr + bh // HKV)
    cols = tile * TILE + tl.arange(0, TILE)
    inb = cols < S
    kt_row = kt_ptr + bh * DH * S
    if G == 1:
        acc = tl.zeros((TILE,), tl.float32)
        for j in tl.static_range(R):
            c = tl.load(idx_ptr + bh * R + j).to(tl.int64)
            kt = load_hint(kt_row + c * S + cols, inb, 0.0, 1 if L2 else 0).to(tl.float32)
            acc += tl.load(qhat_ptr + bh * R + j) * kt
        acc = tl.where(cols < seq_len, acc, float("-inf"))
        m1 = tl.max(acc, axis=0)
        m1_safe = tl.where(m1 == float("-inf"), 0.0, m1)
        store_hint(logit_ptr + bh * S + cols, acc, inb, 2 if L2 else 0)
        tl.store(m_ptr + bh * NT + tile, m1)
        tl.store(l_ptr + bh * NT + tile, tl.sum(tl.exp(acc - m1_safe), axis=0))
    else:
        heads = tl.arange(0, GP)
        hmask = heads < G
        acc = tl.zeros((GP, TILE), tl.float32)
        for j in tl.static_range(R):
            c = tl.load(idx_ptr + bh * R + j).to(tl.int64)
            kt = load_hint(kt_row + c * S + cols[None, :], inb[None, :], 0.0, 1 if L2 else 0)
            qj = tl.load(qhat_ptr + (bh * G + heads) * R + j, mask=hmask, other=0.0)
            acc += qj[:, None] * kt.to(tl.float32)
        valid = (cols < seq_len)[None, :] & hmask[:, None]
        acc = tl.where(valid, acc, float("-inf"))
        m = tl.max(acc, axis=1)
        m_safe = tl.where(m == float("-inf"), 0.0, m)
        l = tl.sum(tl.exp(acc - m_safe[:, None]), axis=1)
        store_hint(
            logit_ptr + bh * G * S + heads[:, None].to(tl.int64) * S + cols[None, :],
            acc,
            hmask[:, None] & inb[None, :],
            2 if L2 else 0,
        )
        stat_off = bh * G * NT + heads * NT + tile
        tl.store(m_ptr + stat_off, m, mask=hmask)
        tl.store(l_ptr + stat_off, l, mask=hmask)
    pdl_exit(PDL)


def _tile_for(S: int, G: int, rp: int = 16) -> int:
    # (16, TILE) fp32 accumulator and (RP, TILE) gathered keys per program at 4 warps; 512
    # positions per program measured fastest on the H200 (K1/K2 shapes), smaller as r grows.
    return min(512, 8192 // rp, max(16, triton.next_power_of_2(S)))


def approx_logits(
    K_t: torch.Tensor,
    comp_idx: torch.Tensor,
    q_hat: torch.Tensor,
    seq_lens: torch.Tensor,
    *,
    tile: int | None = None,
    num_warps: int | None = None,
    fma: bool | None = None,
    row1: bool | None = None,
    rows: bool = False,
    tile_major: bool = False,
    prep_q: tuple | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Approximate SparQ logits over all positions, tiled, with per-tile softmax statistics.

    Args:
        K_t: ``(B, Hkv, dh, S)`` keys, S contiguous, bf16/fp16/fp32.
        comp_idx: ``(B, Hkv, r)`` integer indices of the r query components (paper step 1, ``i1``).
        q_hat: ``(B, Hkv, G, r)`` fp32 selected query components already multiplied by the
            temperature-corrected scale ``1/tau``.
        seq_lens: ``(B,)`` int64 live lengths; positions ``>= seq_lens[b]`` get logit ``-inf``.
        tile, num_warps: launch overrides for tuning (positions per program, warps).
        fma: compute with fp32 multiply-adds per head instead of a tensor-core product. Default
            off: on the H200 (2026-11-29 tuning, tile 512, 4 warps) the tensor-core product was
            faster for G = 1 (0.43 vs 0.46 ms, K1) and G = 4 (0.13 vs 0.42 ms, K2) even though
            it pads the heads to 16 rows.
        row1: for one query head per KV head (MHA), take the head's row out of the 16-row
            tensor-core result before the softmax statistics (TILE exponentials per program
            instead of 16 * TILE). Default on when ``G == 1``; ignored otherwise.
        rows: fp32 multiply-adds over the r gathered rows, one contiguous row load at a time,
            into a (G, TILE) accumulator (no tensor-core padding, no cross-thread reduction;
            takes precedence over ``fma``).
        tile_major: with ``rows``, launch the programs tile-major (consecutive programs take
            consecutive tiles of one (batch, KV head) row; same result).
        prep_q: ``(q, r, scale)`` with ``rows``: no separate query preparation; every program
            derives ``i1`` and ``q_hat`` from ``q`` ``(B, Hq, 1, dh)`` itself (as
            :func:`sparq.kernels.prepare_query_fused` with ``sort=True``); ``comp_idx`` and
            ``q_hat`` are then ignored (pass ``None``).

    Returns:
        ``logits`` ``(B, Hkv, G, S)`` fp32, ``tile_max`` and ``tile_sum`` ``(B, Hkv, G, NT)`` fp32
        with ``NT = ceil(S / TILE)`` (``tile_sum`` is ``sum exp(logit - tile_max)``).
    """
    B, Hkv, dh, S = K_t.shape
    pq = {}
    if prep_q is not None:
        if not rows:
            raise ValueError("prep_q needs rows=True (the row-loop step 1)")
        q, r, scale = prep_q
        G = q.shape[1] // Hkv
        comp_idx = torch.empty(B, Hkv, r, device=K_t.device, dtype=torch.int32)
        q_hat = torch.empty(B, Hkv, G, r, device=K_t.device, dtype=torch.float32)
        pq = {"q_ptr": q.reshape(B, G * Hkv, dh).contiguous(), "scale": float(scale),
              "PREP": True, "DHP": max(2, triton.next_power_of_2(dh))}  # fmt: skip
    G, r = q_hat.shape[2], q_hat.shape[3]
    rp = max(16, triton.next_power_of_2(r))
    tile = tile or _tile_for(S, G, rp)
    nt = triton.cdiv(S, tile)
    dev = K_t.device
    logits = torch.empty(B, Hkv, G, S, device=dev, dtype=torch.float32)
    tmax = torch.empty(B, Hkv, G, nt, device=dev, dtype=torch.float32)
    tsum = torch.empty(B, Hkv, G, nt, device=dev, dtype=torch.float32)
    idx32 = comp_idx.to(torch.int32).contiguous()
    if rows:
        grid = (nt, B * Hkv) if tile_major else (B * Hkv, nt)
        _approx_logits_rows_kernel[grid](
            K_t, idx32, q_hat.contiguous(), seq_lens, logits, tmax, tsum, S, nt, Hkv,
            DH=dh, R=r, G=G, GP=max(2, triton.next_power_of_2(G)), TILE=tile, L2=l2_hints(),
            TM=tile_major,
            num_warps=num_warps or 4, **pdl_kw(), **pq,
        )  # fmt: skip
        return logits, tmax, tsum
    if fma:
        _approx_logits_fma_kernel[(B * Hkv, nt)](
            K_t, idx32, q_hat.contiguous(), seq_lens, logits, tmax, tsum, S, nt, Hkv,
            DH=dh, R=r, RP=max(2, triton.next_power_of_2(r)), G=G, TILE=tile,
            num_warps=num_warps or 4, **pdl_kw(),
        )  # fmt: skip
        return logits, tmax, tsum
    _approx_logits_kernel[(B * Hkv, nt)](
        K_t,
        idx32,
        q_hat.contiguous(),
        seq_lens,
        logits,
        tmax,
        tsum,
        S,
        nt,
        Hkv,
        DH=dh,
        R=r,
        RP=rp,
        G=G,
        GP=max(16, triton.next_power_of_2(G)),
        TILE=tile,
        F32DOT=F32DOT,
        ROW1=G == 1 and row1 is not False,
        num_warps=num_warps or 4,
        **pdl_kw(),
    )
    return logits, tmax, tsum


def approx_logits_reference(
    K_t: torch.Tensor, comp_idx: torch.Tensor, q_hat: torch.Tensor, seq_lens: torch.Tensor
) -> torch.Tensor:
    """Pure-torch fp32 reference of :func:`approx_logits` (logits only, ``(B, Hkv, G, S)``)."""
    B, Hkv, _, S = K_t.shape
    r = comp_idx.shape[-1]
    rows = K_t.float().gather(2, comp_idx.long()[..., None].expand(B, Hkv, r, S))  # (B,Hkv,r,S)
    logits = torch.einsum("bhgr,bhrs->bhgs", q_hat.float(), rows)
    pos = torch.arange(S, device=K_t.device)
    invalid = pos[None, :] >= seq_lens[:, None]  # (B, S)
    return logits.masked_fill(invalid[:, None, None, :], float("-inf"))
