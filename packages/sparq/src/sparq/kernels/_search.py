"""Exact rank thresholds in a register block: "the RANK-th largest of n int32 keys".

The selections need it for the sample thresholds and for the exact k-th key among the
candidate slots. All searches below return the same value (the largest ``t`` with
``count(u >= t) >= RANK``) and differ in how many block reductions they take:

* :func:`_rank_threshold`: bitwise from the top bit, 32 reductions;
* :func:`_rank_threshold16`: 8 radix-16 passes over an ``(n, 16)`` compare block (register
  spills at thousands of keys); :func:`_rank_threshold16x2` runs two such searches at once;
* :func:`_rank_threshold4`: 16 radix-4 passes, the three candidate digits of a pass counted
  in one int64 reduction (three 16-bit count fields);
* :func:`_rank_threshold_h256`: four radix-256 passes, each one masked ``tl.histogram`` of the
  next digit among the keys sharing the digits found so far; measured slower on the H200
  (00:55 UTC run: 444 vs 276 µs for the K1 selection).
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__: list[str] = []


@triton.jit
def _rank_threshold_h256(u, RANK):
    """Largest int32 ``t`` with ``count(u >= t) >= RANK`` (``u`` int32 order-preserving keys of
    any power-of-two length; the same result as the bitwise search, ``-2**31`` when fewer than
    ``RANK`` keys exist)."""
    v = u.to(tl.int64) + 2147483648  # 0 .. 2**32 - 1, same order as u
    b = tl.arange(0, 256)
    prefix = tl.zeros((), tl.int64)
    above = tl.zeros((), tl.int32)  # keys whose digits so far exceed the prefix
    for p in tl.static_range(4):
        d = ((v >> (24 - 8 * p)) & 255).to(tl.int32)
        if p == 0:
            h = tl.histogram(d, 256)
        else:
            h = tl.histogram(d, 256, mask=(v >> (32 - 8 * p)) == prefix)
        ge = tl.sum(h, axis=0) - tl.cumsum(h, axis=0) + h  # keys of this prefix with digit >= b
        j = tl.max(tl.where(above + ge >= RANK, b, 0), axis=0)
        above += tl.sum(tl.where(b > j, h, 0), axis=0)
        prefix = (prefix << 8) + j
    return (prefix - 2147483648).to(tl.int32)


@triton.jit
def _rank_threshold4(u, RANK):
    """Same result as the bitwise search for ``u`` of at most 65535 int32 keys: 16 passes of two
    bits, each one int64 reduction of the packed counts of the three candidate digits."""
    prefix = tl.zeros((), tl.int64)
    for p in tl.static_range(16):
        sh = 30 - 2 * p
        c1 = (prefix + (1 << sh) - 2147483648).to(tl.int32)
        c2 = (prefix + (2 << sh) - 2147483648).to(tl.int32)
        c3 = (prefix + (3 << sh) - 2147483648).to(tl.int32)
        packed = (
            (u >= c1).to(tl.int64) + ((u >= c2).to(tl.int64) << 16) + ((u >= c3).to(tl.int64) << 32)
        )
        tot = tl.sum(packed, axis=0)
        # n1 >= n2 >= n3: the digit is how many of them still reach RANK
        digit = (
            ((tot & 65535) >= RANK).to(tl.int64)
            + (((tot >> 16) & 65535) >= RANK).to(tl.int64)
            + (((tot >> 32) & 65535) >= RANK).to(tl.int64)
        )
        prefix = prefix + (digit << sh)
    return (prefix - 2147483648).to(tl.int32)


@triton.jit
def _rank_threshold(u, RANK):
    """Largest int32 ``t`` with ``count(u >= t) >= RANK`` (bitwise search from the top bit)."""
    prefix = tl.zeros((), tl.int64)
    for b in tl.static_range(31, -1, -1):
        cand = prefix | (1 << b)
        cnt = tl.sum((u >= (cand - 2147483648).to(tl.int32)).to(tl.int32), axis=0)
        prefix = tl.where(cnt >= RANK, cand, prefix)
    return (prefix - 2147483648).to(tl.int32)


@triton.jit
def _rank_threshold16(u, RANK):
    """Same result as :func:`_rank_threshold`: radix-16 search, 8 passes that each count 16
    candidate thresholds at once (8 block reductions instead of 32)."""
    j = tl.arange(0, 16).to(tl.int64)
    prefix = tl.zeros((), tl.int64)
    for p in tl.static_range(8):
        cand = ((prefix + (j << (28 - 4 * p))) - 2147483648).to(tl.int32)
        cnt = tl.sum((u[:, None] >= cand[None, :]).to(tl.int32), axis=0)
        prefix = prefix + (tl.max(tl.where(cnt >= RANK, j, 0), axis=0) << (28 - 4 * p))
    return (prefix - 2147483648).to(tl.int32)


@triton.jit
def _rank_thr(u, RANK, R16: tl.constexpr):
    """Rank threshold by the search ``R16`` picks: 0 bitwise, 1 radix-16, 2 radix-256
    histograms (:func:`_rank_threshold_h256`), 3 packed radix-4 (:func:`_rank_threshold4`);
    all give the same result."""
    if R16 == 3:
        t = _rank_threshold4(u, RANK)
    elif R16 == 2:
        t = _rank_threshold_h256(u, RANK)
    elif R16:
        t = _rank_threshold16(u, RANK)
    else:
        t = _rank_threshold(u, RANK)
    return t


@triton.jit
def _rank_threshold16x2(u, RANK, v, RANKQ):
    """``(_rank_threshold16(u, RANK), _rank_threshold16(v, RANKQ))`` for two equally long int32
    vectors in the same 8 passes: one (n, 32) compare block and one block reduction per pass."""
    jj = tl.arange(0, 32)
    first = jj < 16
    jl = (jj % 16).to(tl.int64)
    pu = tl.zeros((), tl.int64)
    pv = tl.zeros((), tl.int64)
    for p in tl.static_range(8):
        cand = ((tl.where(first, pu, pv) + (jl << (28 - 4 * p))) - 2147483648).to(tl.int32)
        x = tl.where(first[None, :], u[:, None], v[:, None])
        cnt = tl.sum((x >= cand[None, :]).to(tl.int32), axis=0)
        pu = pu + (tl.max(tl.where(first & (cnt >= RANK), jl, 0), axis=0) << (28 - 4 * p))
        pv = pv + (tl.max(tl.where((~first) & (cnt >= RANKQ), jl, 0), axis=0) << (28 - 4 * p))
    return (pu - 2147483648).to(tl.int32), (pv - 2147483648).to(tl.int32)
