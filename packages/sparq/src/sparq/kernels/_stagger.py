"""Staggered decode calls: the rows of one SparQ call as parts offset by one step 1, each on its
own CUDA stream, so that one part's short latency-bound kernels overlap the next part's
bandwidth-bound ones."""

from __future__ import annotations

import torch

__all__ = ["staggered"]

_SIDE: dict[tuple, list] = {}


def _side_streams(n: int, device: torch.device, priority: bool = False) -> list:
    """``n`` CUDA streams of ``device`` kept for the staggered parts (created once). With
    ``priority`` the first has the highest priority the device offers and each next one a
    lower one (down to the default priority)."""
    key = (str(device), n, priority)
    if key not in _SIDE:
        if priority:
            rng = torch.cuda.Stream.priority_range()  # lower numbers: higher priority
            least, greatest = max(rng), min(rng)
            prios = [max(greatest, least - (n - 1 - i)) for i in range(n)]
        else:
            prios = [0] * n
        _SIDE[key] = [torch.cuda.Stream(device=device, priority=p) for p in prios]
    return _SIDE[key]


def staggered(run, n: int, q, K, V, K_t, v_mean, seq_lens, priority: bool = False) -> torch.Tensor:
    """One decode call as ``n`` staggered parts of its rows (CUDA-graph capturable).

    The rows are split by batch (by KV head when ``B == 1``) into ``n`` nearly equal parts,
    each a contiguous slice of every input. Part 0 runs on the current stream, part ``i > 0``
    on a side stream that first waits for the inputs and for part ``i - 1``'s step 1 (an event
    recorded by ``run(..., after_step1=...)``); the current stream waits for every part before
    returning. The selection, merge and query-preparation kernels of a part are short and
    bound by latency, the step-1 and step-2 kernels by bandwidth; offset by one step 1, one
    part's short kernels run while the next part streams its keys. Every part writes its slice
    of one output. On the CPU (interpreter) the parts run one after the other.

    ``priority``: every part runs on a side stream, the earlier parts with higher stream
    priority, so that when they compete for free multiprocessors the short kernels of an
    earlier part go before the long grid of a later one.

    ``run(q, K, V, K_t, v_mean, seq_lens, out=..., after_step1=...)`` launches one part;
    returns ``(B, Hq, 1, dh)`` like it.
    """
    B, Hq = q.shape[0], q.shape[1]
    Hkv = K.shape[1]
    G = Hq // Hkv
    by_batch = B > 1
    total = B if by_batch else Hkv
    bounds = [total * i // n for i in range(n + 1)]
    out = torch.empty_like(q)

    def part(i):
        lo, hi = bounds[i], bounds[i + 1]
        if by_batch:
            sl = (slice(lo, hi),)
            return (q[sl], K[sl], V[sl], K_t[sl], None if v_mean is None else v_mean[sl],
                    seq_lens[lo:hi], out[sl])  # fmt: skip
        hq = (slice(None), slice(lo * G, hi * G))
        hk = (slice(None), slice(lo, hi))
        return (q[hq], K[hk], V[hk], K_t[hk], None if v_mean is None else v_mean[hk],
                seq_lens, out[hq])  # fmt: skip

    if not q.is_cuda:
        for i in range(n):
            *args, o = part(i)
            run(*args, out=o)
        return out
    cur = torch.cuda.current_stream(q.device)
    if priority:
        sides = _side_streams(n, q.device, True)
        parts = sides
    else:
        sides = _side_streams(n - 1, q.device)
        parts = [cur, *sides]
    prev = None
    for i in range(n):
        st = parts[i]
        if st is not cur:
            st.wait_stream(cur)  # the inputs (and `out`) were made on the current stream
        if i:
            st.wait_event(prev)  # stagger: after the previous part's step 1
        ev = torch.cuda.Event()
        recorded = []

        def hook(ev=ev, st=st, recorded=recorded):
            ev.record(st)
            recorded.append(True)

        *args, o = part(i)
        with torch.cuda.stream(st):
            run(*args, out=o, after_step1=hook)
            if not recorded:
                hook()
        prev = ev
    for st in sides:
        cur.wait_stream(st)
    return out
