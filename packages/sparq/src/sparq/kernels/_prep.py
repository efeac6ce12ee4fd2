"""Query preparation of SparQ step 1 in one Triton kernel (paper Alg. 1 line 1 and the τ term).

One program per (batch, KV head): ``s = sum_{h in group} |q_h|``, the ``r`` components of
largest ``s`` (ties to the lower index, in descending order, exactly as the stable sort of
:func:`sparq.kernels.prepare_query`) by ranking every component against every other, then per
head the L1 coverage ``c_h = ||q_h[i1]||_1 / ||q_h||_1`` and ``q_hat = q_h[i1] * scale /
sqrt(c_h)``. Replaces about ten small PyTorch kernels of the torch version.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import pdl_enter, pdl_exit, pdl_kw

__all__ = ["prepare_query_fused"]


@triton.jit
def _prep_kernel(
    q_ptr, i1_ptr, qhat_ptr, scale, R, G: tl.constexpr, GP: tl.constexpr, DH: tl.constexpr,
    DHP: tl.constexpr, JB: tl.constexpr,
    PDL: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    heads = tl.arange(0, GP)
    d = tl.arange(0, DHP)
    hmask = heads < G
    dmask = d < DH
    q = tl.load(q_ptr + bh * G * DH + heads[:, None] * DH + d[None, :],
                mask=hmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)  # fmt: skip
    aq = tl.abs(q)
    s = tl.where(dmask, tl.sum(aq, axis=0), -1.0)  # padding ranks last
    # rank_i = #{j : s_j > s_i or (s_j == s_i and j < i)}, in blocks of JB components j
    rank = tl.zeros((DHP,), tl.int32)
    for jb in tl.static_range(0, DHP, JB):
        j = jb + tl.arange(0, JB)
        qj = tl.load(q_ptr + bh * G * DH + heads[:, None] * DH + j[None, :],
                     mask=hmask[:, None] & (j[None, :] < DH), other=0.0).to(tl.float32)  # fmt: skip
        sj = tl.where(j < DH, tl.sum(tl.abs(qj), axis=0), -1.0)
        gt = sj[:, None] > s[None, :]
        before = gt | ((sj[:, None] == s[None, :]) & (j[:, None] < d[None, :]))
        rank += tl.sum(before.to(tl.int32), axis=0)
    sel = (rank < R) & dmask
    tl.store(i1_ptr + bh * R + rank, d, mask=sel)
    total = tl.sum(aq, axis=1)  # (GP,)
    cov = tl.where(total > 0, tl.sum(tl.where(sel[None, :], aq, 0.0), axis=1)
                   / tl.maximum(total, 1e-30), 1.0)  # fmt: skip
    scale_hat = scale / tl.sqrt(tl.maximum(cov, 1e-30))
    qh = q * scale_hat[:, None]
    tl.store(qhat_ptr + (bh * G + heads[:, None]) * R + rank[None, :], qh,
             mask=hmask[:, None] & sel[None, :])  # fmt: skip
    pdl_exit(PDL)


@triton.jit
def _prep_sort_row(q_ptr, i1_ptr, qhat_ptr, scale, R, bh, G: tl.constexpr, GP: tl.constexpr,
                   DH: tl.constexpr, DHP: tl.constexpr):  # fmt: skip
    """The query preparation of row ``bh`` (one KV group) by one ``tl.sort`` of the packed
    (score, lower index first) keys; stores ``i1`` and ``q_hat`` of the row."""
    heads = tl.arange(0, GP)
    d = tl.arange(0, DHP)
    hmask = heads < G
    dmask = d < DH
    row = q_ptr + bh * G * DH + heads[:, None] * DH
    q = tl.load(row + d[None, :], mask=hmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)
    aq = tl.abs(q)
    s = tl.where(dmask, tl.sum(aq, axis=0), -1.0)  # >= 0 (padding -1 ranks last)
    # int32 images of non-negative floats keep their order; the low word puts, among equal
    # scores, the lower component first in a descending sort
    key = (s.to(tl.int32, bitcast=True).to(tl.int64) << 32) + (DHP - 1 - d)
    top = tl.sort(key, descending=True)
    low = top - ((top >> 32) << 32)  # the low word, 0 .. DHP - 1
    comp = (DHP - 1 - low).to(tl.int32)  # components by descending score
    keep = d < R
    tl.store(i1_ptr + bh * R + d, comp, mask=keep)
    qs = tl.load(row + comp[None, :], mask=hmask[:, None] & keep[None, :], other=0.0)
    qs = qs.to(tl.float32)
    total = tl.sum(aq, axis=1)  # (GP,)
    cov = tl.where(total > 0, tl.sum(tl.abs(qs), axis=1) / tl.maximum(total, 1e-30), 1.0)
    scale_hat = scale / tl.sqrt(tl.maximum(cov, 1e-30))
    tl.store(qhat_ptr + (bh * G + heads[:, None]) * R + d[None, :], qs * scale_hat[:, None],
             mask=hmask[:, None] & keep[None, :])  # fmt: skip


@triton.jit
def _prep_sort_kernel(
    q_ptr, i1_ptr, qhat_ptr, scale, R, G: tl.constexpr, GP: tl.constexpr, DH: tl.constexpr,
    DHP: tl.constexpr,
    PDL: tl.constexpr = False,
):  # fmt: skip
    """:func:`_prep_kernel` by one ``tl.sort`` of the packed (score, lower index first) keys
    instead of the all-pairs ranking."""
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    _prep_sort_row(q_ptr, i1_ptr, qhat_ptr, scale, R, bh, G, GP, DH, DHP)
    pdl_exit(PDL)


def prepare_query_fused(
    q: torch.Tensor, Hkv: int, r: int, scale: float, *, sort: bool = False, num_warps: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same as :func:`sparq.kernels.prepare_query` in one kernel launch.

    Args:
        q: ``(B, Hq, 1, dh)`` query (any float dtype), ``Hq % Hkv == 0``.
        Hkv, r, scale: KV heads, components kept, exact-softmax scale.
        sort: pick the components by one bitonic ``tl.sort`` of packed (score, index) keys
            instead of ranking every component against every other (same result).
        num_warps: warps per (batch, KV head) program.

    Returns:
        ``i1`` ``(B, Hkv, r)`` **int32** component indices (descending ``sum |q|``, ties to the
        lower index) and ``q_hat`` ``(B, Hkv, G, r)`` fp32 temperature-scaled components.
    """
    B, Hq, _, dh = q.shape
    G = Hq // Hkv
    if not 1 <= r <= dh:
        raise ValueError(f"r must be in [1, dh={dh}], got {r}")
    qc = q.reshape(B, Hq, dh).contiguous()
    i1 = torch.empty(B, Hkv, r, device=q.device, dtype=torch.int32)
    q_hat = torch.empty(B, Hkv, G, r, device=q.device, dtype=torch.float32)
    dhp = max(2, triton.next_power_of_2(dh))
    GP = max(2, triton.next_power_of_2(G))
    if sort:
        _prep_sort_kernel[(B * Hkv,)](
            qc,
            i1,
            q_hat,
            float(scale),
            r,
            G=G,
            GP=GP,
            DH=dh,
            DHP=dhp,
            num_warps=num_warps,
            **pdl_kw(),
        )
        return i1, q_hat
    _prep_kernel[(B * Hkv,)](
        qc, i1, q_hat, float(scale), r, G=G, GP=GP, DH=dh,
        DHP=dhp, JB=min(32, dhp), num_warps=num_warps, **pdl_kw(),
    )  # fmt: skip
    return i1, q_hat
