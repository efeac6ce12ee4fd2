"""Step 2 of SparQ decode: exact attention over the k selected rows, split like flash-decoding.

``_sparse_attn_kernel``: one program per (batch, KV head, split). It walks its share of the selected
indices in blocks, gathers the K and V rows (each a contiguous ``dh`` run), and runs an online
softmax for all ``G`` query heads of the group at once (the heads are the M dimension of the
tensor-core products, so K/V rows are read once per KV head: no GQA expansion). Positions
``>= seq_len`` are masked.
It writes per-split partial results ``(max, sum, acc)`` in fp32.

``_merge_kernel``: one program per (batch, query head). It merges the splits and applies the
mean-value reallocation ``y = alpha * y_sel + (1 - alpha) * v_mean`` (paper Alg. 1, step 3).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import F32DOT, pdl_enter, pdl_exit, pdl_kw

__all__ = ["sparse_attention", "sparse_attention_reference"]


@triton.jit
def _group_q(q_ptr, bh, G: tl.constexpr, DH: tl.constexpr, GP: tl.constexpr, DHP: tl.constexpr):
    """The ``G`` query heads of KV head ``bh`` (``(GP, DHP)``, zero-padded) with an empty online
    softmax state: returns ``heads, hmask, d, dmask, q, m_i, l_i, acc``."""
    heads = tl.arange(0, GP)
    d = tl.arange(0, DHP)
    hmask = heads < G
    dmask = d < DH
    q = tl.load(
        q_ptr + bh * G * DH + heads[:, None] * DH + d[None, :],
        mask=hmask[:, None] & dmask[None, :],
        other=0.0,
    )
    m_i = tl.full((GP,), float("-inf"), tl.float32)
    l_i = tl.zeros((GP,), tl.float32)
    acc = tl.zeros((GP, DHP), tl.float32)
    return heads, hmask, d, dmask, q, m_i, l_i, acc


@triton.jit
def _online_step(q, kb, vb, ok, m_i, l_i, acc, scale, F32DOT: tl.constexpr):
    """Online softmax over one block of gathered rows ``kb``/``vb`` ``(BK, DHP)`` (rows where
    ``ok`` is false are masked out); returns the new ``m_i, l_i, acc``."""
    if F32DOT:
        s = tl.dot(q.to(tl.float32), tl.trans(kb.to(tl.float32))) * scale
    else:
        s = tl.dot(q, tl.trans(kb)) * scale  # (GP, BK) fp32
    s = tl.where(ok[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    corr = tl.exp(m_i - m_safe)
    p = tl.exp(s - m_safe[:, None])
    l_i = l_i * corr + tl.sum(p, axis=1)
    if F32DOT:
        pv = tl.dot(p.to(vb.dtype).to(tl.float32), vb.to(tl.float32))
    else:
        pv = tl.dot(p.to(vb.dtype), vb)
    return m_new, l_i, acc * corr[:, None] + pv


@triton.jit
def _sparse_attn_kernel(
    q_ptr,  # (BH, G, dh) input dtype
    k_ptr,  # (BH, S, dh)
    v_ptr,  # (BH, S, dh)
    idx_ptr,  # (BH, K) int32
    lens_ptr,  # (B,) int64
    pm_ptr,  # (BH, G, NSPLIT) fp32 out
    pl_ptr,  # (BH, G, NSPLIT) fp32 out
    pacc_ptr,  # (BH, G, NSPLIT, dh) fp32 out
    S,
    K,
    HKV,
    NSPLIT,
    CHUNK,
    scale,
    DH: tl.constexpr,
    DHP: tl.constexpr,
    G: tl.constexpr,
    GP: tl.constexpr,
    BK: tl.constexpr,
    F32DOT: tl.constexpr,
    PDL: tl.constexpr = False,
):
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    split = tl.program_id(1)
    b = bh // HKV
    seq_len = tl.load(lens_ptr + b)
    heads, hmask, d, dmask, q, m_i, l_i, acc = _group_q(q_ptr, bh, G, DH, GP, DHP)
    k_base = k_ptr + bh * S * DH
    v_base = v_ptr + bh * S * DH
    lo = split * CHUNK
    hi = tl.minimum(lo + CHUNK, K)
    for start in range(lo, hi, BK):
        j = start + tl.arange(0, BK)
        jmask = j < hi
        pos = tl.load(idx_ptr + bh * K + j, mask=jmask, other=0).to(tl.int64)
        ok = jmask & (pos < seq_len)
        kv_off = pos[:, None] * DH + d[None, :]
        kv_mask = ok[:, None] & dmask[None, :]
        kb = tl.load(k_base + kv_off, mask=kv_mask, other=0.0)
        vb = tl.load(v_base + kv_off, mask=kv_mask, other=0.0)
        m_i, l_i, acc = _online_step(q, kb, vb, ok, m_i, l_i, acc, scale, F32DOT)
    off = bh * G * NSPLIT + heads * NSPLIT + split
    tl.store(pm_ptr + off, m_i, mask=hmask)
    tl.store(pl_ptr + off, l_i, mask=hmask)
    tl.store(pacc_ptr + off[:, None] * DH + d[None, :], acc, mask=hmask[:, None] & dmask[None, :])
    pdl_exit(PDL)


@triton.jit
def _merge_kernel(
    pm_ptr,  # (BHq, NSPLIT)
    pl_ptr,
    pacc_ptr,  # (BHq, NSPLIT, dh)
    alpha_ptr,  # (BHq,) fp32
    vmean_ptr,  # (B*Hkv, dh) fp32
    out_ptr,  # (BHq, dh) out dtype
    NSPLIT,
    G: tl.constexpr,
    DH: tl.constexpr,
    DHP: tl.constexpr,
    NSP: tl.constexpr,
    REALLOC: tl.constexpr,
    PDL: tl.constexpr = False,
):
    pdl_enter(PDL)
    row = tl.program_id(0).to(tl.int64)
    sp = tl.arange(0, NSP)
    d = tl.arange(0, DHP)
    smask = sp < NSPLIT
    dmask = d < DH
    m = tl.load(pm_ptr + row * NSPLIT + sp, mask=smask, other=float("-inf"))
    l = tl.load(pl_ptr + row * NSPLIT + sp, mask=smask, other=0.0)
    acc = tl.load(
        pacc_ptr + (row * NSPLIT + sp[:, None]) * DH + d[None, :],
        mask=smask[:, None] & dmask[None, :],
        other=0.0,
    )
    M = tl.max(m, axis=0)
    M = tl.where(float("-inf") == M, 0.0, M)
    w = tl.where(smask, tl.exp(m - M), 0.0)
    L = tl.sum(w * l, axis=0)
    y = tl.sum(w[:, None] * acc, axis=0)
    y = tl.where(L > 0, y / tl.maximum(L, 1e-30), 0.0)
    if REALLOC:
        a = tl.load(alpha_ptr + row)
        vm = tl.load(vmean_ptr + (row // G) * DH + d, mask=dmask, other=0.0)
        y = a * y + (1.0 - a) * vm
    tl.store(out_ptr + row * DH + d, y.to(out_ptr.dtype.element_ty), mask=dmask)
    pdl_exit(PDL)


def _num_splits(bh: int, k: int, bk: int, sms: int = 132) -> int:
    """Enough splits to give every multiprocessor ~4 programs, each with >= 2 blocks of rows."""
    want = max(1, triton.cdiv(4 * sms, bh))
    return max(1, min(want, triton.cdiv(k, 2 * bk), 64))


def sparse_attention(
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    idx: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    alpha: torch.Tensor | None = None,
    v_mean: torch.Tensor | None = None,
    num_splits: int | None = None,
    *,
    out: torch.Tensor | None = None,
    block: int | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
) -> torch.Tensor:
    """Exact attention over selected positions with optional mean-value reallocation.

    Args:
        q: ``(B, Hq, 1, dh)`` queries (bf16/fp16/fp32).
        K, V: ``(B, Hkv, S, dh)`` contiguous caches of the same dtype as ``q``.
        idx: ``(B, Hkv, k)`` int32 positions shared by the query heads of each KV group.
        seq_lens: ``(B,)`` int64 live lengths (selected positions ``>= seq_len`` get no weight).
        scale: softmax scale of the exact logits (usually ``dh ** -0.5``).
        alpha: ``(B, Hq)`` fp32 captured mass; with ``v_mean`` ``(B, Hkv, dh)`` fp32 the output is
            ``alpha * y + (1 - alpha) * v_mean`` (paper step 3); ``None`` returns ``y``.
        num_splits: override of the number of splits over ``k`` (flash-decoding style).
        out: contiguous ``(B, Hq, 1, dh)`` tensor of ``q.dtype`` to write the result into
            (default: a new one).
        block, num_warps, num_stages: launch overrides for tuning (rows per step, warps, stages).

    Returns:
        ``(B, Hq, 1, dh)`` in ``q.dtype``.
    """
    B, Hq, _, dh = q.shape
    Hkv, S = K.shape[1], K.shape[2]
    G = Hq // Hkv
    k = idx.shape[-1]
    bk = block or (64 if dh <= 128 else 32)
    ns = num_splits or _num_splits(B * Hkv, k, bk)
    chunk = triton.cdiv(triton.cdiv(k, ns), bk) * bk
    ns = triton.cdiv(k, chunk)
    dev = q.device
    pm = torch.empty(B, Hq, ns, device=dev, dtype=torch.float32)
    pl = torch.empty_like(pm)
    pacc = torch.empty(B, Hq, ns, dh, device=dev, dtype=torch.float32)
    _sparse_attn_kernel[(B * Hkv, ns)](
        q.contiguous(),
        K,
        V,
        idx,
        seq_lens,
        pm,
        pl,
        pacc,
        S,
        k,
        Hkv,
        ns,
        chunk,
        float(scale),
        DH=dh,
        DHP=triton.next_power_of_2(dh),
        G=G,
        GP=max(16, triton.next_power_of_2(G)),
        BK=bk,
        F32DOT=F32DOT,
        num_warps=num_warps or (8 if G > 1 else 4),
        num_stages=num_stages or 3,
        **pdl_kw(),
    )
    if out is None:
        out = torch.empty(B, Hq, 1, dh, device=dev, dtype=q.dtype)
    elif out.shape != (B, Hq, 1, dh) or out.dtype != q.dtype or not out.is_contiguous():
        raise ValueError(
            f"out must be a contiguous {(B, Hq, 1, dh)} {q.dtype} tensor, got "
            f"{tuple(out.shape)} {out.dtype} (contiguous: {out.is_contiguous()})"
        )
    realloc = alpha is not None and v_mean is not None
    _merge_kernel[(B * Hq,)](
        pm,
        pl,
        pacc,
        alpha if realloc else pm,
        v_mean.contiguous() if realloc else pm,
        out,
        ns,
        G=G,
        DH=dh,
        DHP=triton.next_power_of_2(dh),
        NSP=max(2, triton.next_power_of_2(ns)),
        REALLOC=realloc,
        num_warps=4,
        **pdl_kw(),
    )
    return out


def sparse_attention_reference(
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    idx: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    alpha: torch.Tensor | None = None,
    v_mean: torch.Tensor | None = None,
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Pure-torch reference of :func:`sparse_attention`, computed in ``compute_dtype``."""
    B, Hq, _, dh = q.shape
    Hkv = K.shape[1]
    G = Hq // Hkv
    k = idx.shape[-1]
    gi = idx.long()[..., None].expand(B, Hkv, k, dh)
    Ks = K.gather(2, gi).to(compute_dtype).repeat_interleave(G, dim=1)  # (B,Hq,k,dh)
    Vs = V.gather(2, gi).to(compute_dtype).repeat_interleave(G, dim=1)
    s = (q.to(compute_dtype) @ Ks.transpose(-1, -2)) * scale  # (B,Hq,1,k)
    valid = idx.long().repeat_interleave(G, dim=1) < seq_lens[:, None, None]
    s = s.masked_fill(~valid[:, :, None, :], float("-inf"))
    w = torch.softmax(s, dim=-1).nan_to_num(0.0)
    y = w @ Vs
    if alpha is not None and v_mean is not None:
        a = alpha.to(compute_dtype)[..., None, None]
        vm = v_mean.to(compute_dtype).repeat_interleave(G, dim=1)[:, :, None, :]
        y = a * y + (1 - a) * vm
    return y.to(q.dtype)
