"""Winner count and emit of the histogram selection in one kernel (decoupled look-back).

:func:`sparq.kernels.select_topk_hist` writes each row's winners in position order: chunk ``c``
needs the number of winners of chunks ``0..c-1`` (its output offset). Two launches (count, then
emit) provide it. ``_hcount_emit_kernel`` does it in one: each (row, chunk) program takes its chunk
number from a per-row ticket counter (so every lower chunk belongs to a program that has already
started: no deadlock whatever the scheduling order), counts its winners, publishes the count as an
*aggregate*, then reads all lower chunks' words in one vector load (again while some are not
published yet) and sums the nearest *inclusive* prefix and the aggregates after it, and
publishes its own inclusive prefix. (A chunk-by-chunk walk back cost one memory round trip per
chunk: 14 µs more than the two kernels on K2 at 00:55 UTC.) Each word packs
``count << 2 | flag`` (flag 1: aggregate, 2: inclusive), so one atomic carries value and state.
The output equals the two-kernel path (same positions, same order). Rows with no softmax mass to
sum only (``need_alpha=False``); the threshold kernel zeroes the words and the ticket.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._common import pdl_enter, pdl_exit
from ._select_hist import _chunk_winners
from ._select_sample import _exact_row_fallback

__all__: list[str] = []


@triton.jit
def _hcount_emit_kernel(
    logit_ptr, lens_ptr, stat_ptr, cnt_ptr, ckey_ptr, cpos_ptr, res_ptr, lb_ptr, out_idx_ptr,
    alpha_ptr, S, HKV, NCH, K, window, sinks, G: tl.constexpr, GP: tl.constexpr,
    CAP: tl.constexpr, LBW: tl.constexpr, NCHP: tl.constexpr, CHF: tl.constexpr,
    LEAN: tl.constexpr,
    PDL: tl.constexpr = False,
):  # fmt: skip
    pdl_enter(PDL)
    bh = tl.program_id(0).to(tl.int64)
    lb_row = lb_ptr + bh * LBW
    c = tl.atomic_add(lb_row + NCH, 1)  # ticket: this program's chunk
    out_row = out_idx_ptr + bh * K
    if tl.load(res_ptr + bh * 3 + 2) != 0:
        T = tl.load(res_ptr + bh * 3)
        plim = tl.load(res_ptr + bh * 3 + 1)
        _, pos, sel = _chunk_winners(cnt_ptr, ckey_ptr, cpos_ptr, T, plim, bh, c, NCH, CAP, LEAN)
        si = sel.to(tl.int32)
        w = tl.sum(si, axis=0)
        base = tl.zeros((), tl.int32)
        if c == 0:
            tl.atomic_xchg(lb_row, (w << 2) | 2)
        else:
            tl.atomic_xchg(lb_row + c, (w << 2) | 1)
            # read all lower chunks' words at once (one round trip, not one per chunk): the
            # nearest inclusive prefix plus the aggregates after it, once all those are published
            jj = tl.arange(0, NCHP)
            before = jj < c
            found = tl.zeros((), tl.int32)
            spins = tl.zeros((), tl.int32)  # a bound, so that no fault can hang the GPU
            while (found == 0) & (spins < 1048576):
                st = tl.load(lb_row + jj, mask=before, other=0, volatile=True)
                flag = st & 3
                last = tl.max(tl.where(before & (flag == 2), jj, -1), axis=0)
                after = before & (jj >= last)
                gap = tl.sum((after & (flag == 0)).to(tl.int32), axis=0)
                found = ((last >= 0) & (gap == 0)).to(tl.int32)
                base = tl.sum(tl.where(after, st >> 2, 0), axis=0)
                spins += 1
            tl.atomic_xchg(lb_row + c, ((base + w) << 2) | 2)
        dest = base + tl.cumsum(si, axis=0) - si
        tl.store(out_row + dest, pos, mask=sel & (dest < K))
    elif c == 0:
        heads = tl.arange(0, GP)
        M = tl.load(stat_ptr + bh * 2 * GP + heads)
        inv_z = tl.load(stat_ptr + bh * 2 * GP + GP + heads)
        _exact_row_fallback(
            logit_ptr + bh * G * S, out_row, alpha_ptr, bh, heads, M, inv_z,
            tl.load(lens_ptr + bh // HKV), S, K, window, sinks, G, GP, CHF,
        )  # fmt: skip
    pdl_exit(PDL)
