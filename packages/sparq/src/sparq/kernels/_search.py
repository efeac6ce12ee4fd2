"""Exact rank thresholds by radix-256 histograms (``tl.histogram``) instead of bitwise counts.

The selections find "the RANK-th largest key" of a register block many times: the sample
thresholds and the exact k-th key among the candidate slots. A bitwise search needs 32 block
reductions (one per bit) and a radix-16 one needs a ``(n, 16)`` compare block (register spills
at thousands of keys). :func:`_rank_threshold_h256` takes four passes of eight bits; each pass
is one masked ``tl.histogram`` (warp ballots and shared-memory adds, no block reduction per
bit) of the next digit among the keys that share the digits found so far, then a 256-entry
suffix sum picks the digit that holds the RANK-th key.
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
