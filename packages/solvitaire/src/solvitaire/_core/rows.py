"""The row games, Accordion and Gaps: their compact states, moves, keys and search loop.

:func:`.dfs.search_chunk` runs them with the functions here (the same stacks, move rows,
table and control vector as the pile games), on states of their own:

* **Accordion** (``cfg[FAMILY] == 1``): the state is ``[n, top_0, ..., top_{N-1}]`` (int8):
  the top cards of the n piles left in the row, left to right; the cards under a top never
  matter again. A move (``K_ACC``, a = i, b = j) puts pile i onto pile j = i - d (bit d of
  ``ALEFT``) or i + d (bit d of ``ARIGHT``) when the two top cards match by one policy of
  ``APOL`` (bit 0 same suit, 1 same rank, 2 red-black, 3 any card); pile i leaves the row.
  Won when one pile is left.
* **Gaps** (``cfg[FAMILY] == 2``): the state is the ``GROWS`` x ``GCOLS`` grid, row by row,
  left to right (card codes; 0 = a gap, where the aces were). A move (``K_GAP``, a = the
  card's cell, b = a gap) puts a card into a gap: building left to right (bit 0 of ``GDIR``),
  a gap takes the card that goes on its left neighbour by the ``BUILD`` policy (one rank
  higher), and a gap in the first column takes a 2 (of suit r in row r with ``GFIXED``);
  building right to left (bit 1) mirrors that, kings going into the last column. A gap after
  a king (or before a 2) is dead. Won when every row holds 2..max rank built from its
  anchored end. Without ``GFIXED`` the rows are interchangeable, so the key is a sum of
  per-row hashes (row symmetry); with it the rows are keyed in place.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .building import _builds  # (base 1: a plain rank test; mr unused)
from .keys import _mix
from .layout import (
    ALEFT,
    APOL,
    ARIGHT,
    BUILD,
    D_UNIQUE,
    FAMILY,
    GCOLS,
    GDIR,
    GFIXED,
    GROWS,
    K_ACC,
    K_GAP,
    MR,
    _add,
)
from .table import tt_insert

ACCORDION, GAPS = 1, 2


@njit(cache=True, inline="always")
def _acc_match(cfg, a, b):
    """Whether top cards ``a`` and ``b`` match by one of the Accordion policies."""
    pol = cfg[APOL]
    if pol & 8:
        return True
    if (pol & 1) and (a & 3) == (b & 3):
        return True
    if (pol & 2) and (a >> 2) == (b >> 2):
        return True
    return (pol & 4) != 0 and (a & 1) != (b & 1)


@njit(cache=True)
def _gap_takes(S, cfg, g, x):
    """Whether the card ``x`` may go into the gap at cell ``g``."""
    cols = cfg[GCOLS]
    r = g // cols
    c = g - r * cols
    pol = cfg[BUILD]
    if cfg[GDIR] & 1:
        if c == 0:
            if (x >> 2) == 2 and (cfg[GFIXED] == 0 or (x & 3) == r % 4):
                return True
        else:
            left = S[g - 1]
            if left != 0 and _builds(pol, left, x, 1, 0):
                return True
    if cfg[GDIR] & 2:
        if c == cols - 1:
            if (x >> 2) == cfg[MR] and (cfg[GFIXED] == 0 or (x & 3) == r % 4):
                return True
        else:
            right = S[g + 1]
            if right != 0 and _builds(pol, x, right, 1, 0):
                return True
    return False


@njit(cache=True)
def rows_moves(S, cfg, mv, k):
    """Write the legal moves of ``S`` at ``mv[k:]``; returns the new end."""
    if cfg[FAMILY] == ACCORDION:
        n = S[0]
        reach = cfg[ALEFT] | cfg[ARIGHT]
        for i in range(n - 1, -1, -1):  # the rightmost piles first
            d = 0
            while (reach >> (d + 1)) != 0:
                d += 1
                if (cfg[ALEFT] >> d) & 1 and i - d >= 0 and _acc_match(cfg, S[1 + i - d], S[1 + i]):
                    k = _add(mv, k, K_ACC, i, i - d, 1, 0, 0)
                if (cfg[ARIGHT] >> d) & 1 and i + d < n and _acc_match(cfg, S[1 + i + d], S[1 + i]):
                    k = _add(mv, k, K_ACC, i, i + d, 1, 0, 0)
        return k
    cells = cfg[GROWS] * cfg[GCOLS]
    for g in range(cells):
        if S[g] != 0:
            continue
        for q in range(cells):
            x = S[q]
            if x != 0 and _gap_takes(S, cfg, g, x):
                k = _add(mv, k, K_GAP, q, g, 1, 0, 0)
    return k


@njit(cache=True)
def rows_apply(S, cfg, mv, mi):
    """Apply move row ``mi`` to ``S`` in place."""
    a = mv[mi, 1]
    b = mv[mi, 2]
    if mv[mi, 0] == K_ACC:
        n = S[0]
        S[1 + b] = S[1 + a]
        for i in range(a, n - 1):
            S[1 + i] = S[2 + i]
        S[n] = 0
        S[0] = n - 1
    else:
        S[b] = S[a]
        S[a] = 0


@njit(cache=True)
def _row_done(S, cfg, r, from_left):
    cols = cfg[GCOLS]
    mr = cfg[MR]
    first = r * cols if from_left else (r + 1) * cols - (mr - 1)
    prev = 0
    for i in range(mr - 1):
        x = S[first + i]
        if x == 0 or (x >> 2) != i + 2:
            return False
        if i > 0 and not _builds(cfg[BUILD], prev, x, 1, 0):
            return False
        prev = x
    if cfg[GFIXED]:
        end = S[first] if from_left else S[first + mr - 2]
        return (end & 3) == r % 4
    return True


@njit(cache=True)
def rows_won(S, cfg):
    if cfg[FAMILY] == ACCORDION:
        return S[0] == 1
    for r in range(cfg[GROWS]):
        if not (
            ((cfg[GDIR] & 1) and _row_done(S, cfg, r, True))
            or ((cfg[GDIR] & 2) and _row_done(S, cfg, r, False))
        ):
            return False
    return True


@njit(cache=True)
def rows_key(S, cfg, Z):
    """Two 64-bit hashes of ``S`` (rows summed as a multiset in Gaps without fixed suits)."""
    if cfg[FAMILY] == ACCORDION:
        n = S[0]
        a = np.uint64(n) * np.uint64(0x9E3779B97F4A7C15)
        b = np.uint64(n) * np.uint64(0xC2B2AE3D27D4EB4F)
        for i in range(n):
            a ^= Z[0, i, S[1 + i]]
            b ^= Z[1, i, S[1 + i]]
        return _mix(a), _mix(b)
    cols = cfg[GCOLS]
    a = np.uint64(0)
    b = np.uint64(0)
    for r in range(cfg[GROWS]):
        ra = np.uint64(0)
        rb = np.uint64(0)
        pos = 0 if cfg[GFIXED] == 0 else r * cols
        for c in range(cols):
            x = S[r * cols + c]
            ra ^= Z[0, (pos + c) % 128, x]
            rb ^= Z[1, (pos + c) % 128, x]
        a += _mix(ra)
        b += _mix(rb)
    return _mix(a), _mix(b)


@njit(cache=True)
def rows_expand(states, d, cfg, mv, fs, fe, fn, path, tab, Z, ctl):
    """Open node ``d``: False when its state was searched already (a transposition)."""
    S = states[d]
    start = fe[d - 1] if d > 0 else 0
    h1, h2 = rows_key(S, cfg, Z)
    if not tt_insert(tab, h1, h2, ctl):
        return False
    ctl[D_UNIQUE] += 1
    fs[d] = start
    fe[d] = rows_moves(S, cfg, mv, start)
    fn[d] = start
    return True
