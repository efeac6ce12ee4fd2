"""Shortening long DFS solution paths before their replay."""

from __future__ import annotations

import numpy as np
from numba import njit

from .apply import apply_move
from .dominance import dominance
from .keys import _mix
from .layout import MAX_MOVES_NODE
from .movegen import gen_moves


@njit(cache=True, inline="always")
def _fingerprint(S, W):
    """A 64-bit hash of the exact state vector (not pile-permutation invariant)."""
    h = np.uint64(0)
    for x in range(S.shape[0]):
        h += np.uint64(S[x] + 1) * W[x]
    return _mix(h)


@njit(cache=True)
def shortcut_path(states, depth, cfg, mv, path, out):
    """Shorten the solution path ``states[0..depth]`` (its moves are ``mv[path[1..depth]]``).

    From each position reached, every legal move (dominance and generated moves, without the
    previous-move pruning) is tried, and the one that lands exactly on the latest later
    position of the path is kept; then the walk continues from there. The result (written to
    ``out``, its length returned) is a sequence of legal moves from the start to the same won
    position, never longer than the path (DFS paths wander: this removes the detours).
    Positions are matched by a hash of the whole state vector and then compared card by card,
    so a jump only ever lands on the identical position (never a pile permutation of it)."""
    n = depth + 1
    width = states.shape[1]
    W = np.empty(width, np.uint64)
    for x in range(width):
        W[x] = _mix(np.uint64(x + 1) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
    h = np.empty(n, np.uint64)
    for d in range(n):
        h[d] = _fingerprint(states[d], W)
    order = np.argsort(h)
    hs = h[order]
    buf = np.empty((MAX_MOVES_NODE + 1, mv.shape[1]), mv.dtype)
    child = np.empty_like(states[0])
    i = 0
    k = 0
    while i < depth:
        best = i + 1
        bm = -1
        S = states[i]
        nm = dominance(S, cfg, buf, 0)
        nm = gen_moves(S, cfg, buf, nm, -1, 0, -1)
        for m in range(nm):
            child[:] = S
            apply_move(child, cfg, buf, m)
            a = _fingerprint(child, W)
            lo = np.searchsorted(hs, a)
            while lo < n and hs[lo] == a:
                j = order[lo]
                lo += 1
                if j <= best:
                    continue
                same = True
                for x in range(width):
                    if child[x] != states[j, x]:
                        same = False
                        break
                if same:
                    best = j
                    bm = m
        if bm >= 0:
            out[k, :] = buf[bm, :]
        else:
            out[k, :] = mv[path[i + 1], :]
        k += 1
        i = best
    return k
