"""Transposition keys: two independent 64-bit Zobrist hashes of a state.

The key is permutation-invariant over tableau piles (a sum of per-pile hashes), over cells
and over unstacked reserve piles, so symmetric positions share one table entry. Each pile is
hashed Zobrist-style (XOR of random words per (position, card)) in two independent 64-bit
lanes; both lanes are stored per entry (no full-key check; the chance of a false "seen" among
10^8 states is about 10^16 / 2^128, i.e. negligible).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .layout import (
    CAP,
    DCOUNT,
    DTYPE,
    OFF_C,
    OFF_D,
    OFF_DATA,
    OFF_F,
    OFF_L,
    REDEALS,
    RSTACK,
    SDOM,
    SPACES,
    SUITSYM,
    C,
    R,
    T,
    sym_now,
)
from .table import tt_contains

ZPOS, ZCARD = 128, 64  # Zobrist table: positions within a pile x card codes


def zobrist_table(seed: int = 20261129) -> np.ndarray:
    """Random 64-bit words, shape (2 lanes, ZPOS positions, ZCARD card codes)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**63, size=(2, ZPOS, ZCARD), dtype=np.int64).astype(np.uint64) * 2 + 1


@njit(cache=True, inline="always")
def _mix(x):
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True, inline="always")
def _suit_mask(cfg):
    """The bits of a card code that the key reads: all; the rank only (``SUITSYM`` 1: suits
    never matter); the rank and colour (2: the colour-symmetry streamliner)."""
    if cfg[SUITSYM] == 1:
        return -4
    return -3 if cfg[SUITSYM] == 2 else -1


@njit(cache=True, inline="always")
def _pile_hash(S, cfg, Z, p, tag):
    """Two 64-bit hashes of pile ``p`` (its cards bottom first), salted by ``tag``."""
    base = cfg[OFF_DATA] + p * cfg[CAP]
    n = S[cfg[OFF_L] + p]
    a = np.uint64(tag) * np.uint64(0x9E3779B97F4A7C15)
    b = np.uint64(tag) * np.uint64(0xC2B2AE3D27D4EB4F)
    cm = _suit_mask(cfg)
    for i in range(n):
        c = S[base + i] & cm
        a ^= Z[0, i, c]
        b ^= Z[1, i, c]
    return _mix(a + np.uint64(n)), _mix(b ^ np.uint64(n))


@njit(cache=True)
def _cycle_hash(S, cfg, Z):
    """Hash of the stock cycle X = waste (bottom first) + stock (top first) as one sequence:
    with unlimited redeals and a waste size that is a multiple of the draw count, where the
    waste ends is irrelevant (the same cards are reachable), as in the reference."""
    st = cfg[T] + cfg[R]
    nw = S[cfg[OFF_L] + st + 1]
    ns = S[cfg[OFF_L] + st]
    a = np.uint64(0x5851F42D4C957F2D)
    b = np.uint64(0x14057B7EF767814F)
    bw = cfg[OFF_DATA] + (st + 1) * cfg[CAP]
    bs = cfg[OFF_DATA] + st * cfg[CAP]
    cm = _suit_mask(cfg)
    for i in range(nw):
        c = S[bw + i] & cm
        a ^= Z[0, i, c]
        b ^= Z[1, i, c]
    for i in range(ns):
        c = S[bs + ns - 1 - i] & cm
        a ^= Z[0, nw + i, c]
        b ^= Z[1, nw + i, c]
    return _mix(a + np.uint64(nw + ns)), _mix(b ^ np.uint64(nw + ns))


@njit(cache=True, inline="always")
def _cycle_keyed(S, cfg):
    """Whether the stock and waste are keyed as one cycle (unlimited redeals, cards dealt
    ``deal count`` at a time to a waste, and no space filled from the waste or stock by
    itself: that reads the waste's top card, which the cycle key leaves out)."""
    return cfg[REDEALS] < 0 and cfg[DTYPE] == 0 and cfg[SPACES] < 4


@njit(cache=True, inline="always")
def _cycle_pos(S, cfg):
    """Where the waste ends in the stock cycle, as far as it matters: -1 when the cards
    reachable are those of a fresh pass (the waste holds a multiple of the draw count, or the
    stock is empty: then the next deal is a redeal), else the waste size."""
    st = cfg[T] + cfg[R]
    nw = S[cfg[OFF_L] + st + 1]
    if nw % cfg[DCOUNT] == 0 or S[cfg[OFF_L] + st] == 0:
        return -1
    return nw


@njit(cache=True, inline="always")
def _join(h1, h2, a, b, m):
    """The key of a state from the hashes of its other parts (h1, h2), of its stock cycle
    (a, b) and its waste position ``m`` (see :func:`_cycle_pos`)."""
    if m >= 0:
        a = _mix(a ^ (np.uint64(m + 1) * np.uint64(0x9E3779B97F4A7C15)))
        b = _mix(b + np.uint64(m + 1) * np.uint64(0xD6E8FEB86659FD93))
    return _mix(h1 ^ a), _mix(h2 ^ b)


@njit(cache=True)
def _hash_rest(S, cfg, Z):
    """Two 64-bit hashes of everything but the stock and the waste."""
    nt = cfg[T]
    hole = S[1] & _suit_mask(cfg)
    h1 = _mix(np.uint64(S[0]) * np.uint64(131) + np.uint64(hole) + np.uint64(1))
    h2 = _mix(np.uint64(S[0]) * np.uint64(257) + np.uint64(hole) + np.uint64(977))
    of = cfg[OFF_F]
    for f in range(of, cfg[OFF_C]):
        h1 = h1 * np.uint64(31) + np.uint64(S[f])
        h2 = h2 * np.uint64(37) + np.uint64(S[f])
    od = cfg[OFF_D]
    s1 = np.uint64(0)
    s2 = np.uint64(0)
    sym = sym_now(S, cfg)
    for j in range(nt):
        a, b = _pile_hash(S, cfg, Z, j, 11 + 64 * S[od + j])
        if sym:
            s1 += a
            s2 += b
        else:
            s1 = _mix(s1 ^ a) + np.uint64(j + 1)
            s2 = _mix(s2 ^ b) + np.uint64(j + 1)
    h1 = _mix(h1 ^ s1)
    h2 = _mix(h2 ^ s2)
    oc = cfg[OFF_C]
    s1 = np.uint64(0)
    s2 = np.uint64(0)
    cmask = _suit_mask(cfg)
    for i in range(cfg[C]):
        c = S[oc + i] & cmask
        s1 += Z[0, ZPOS - 1, c]
        s2 += Z[1, ZPOS - 1, c]
    h1 = _mix(h1 ^ s1)
    h2 = _mix(h2 ^ s2)
    s1 = np.uint64(0)
    s2 = np.uint64(0)
    for r in range(nt, nt + cfg[R]):
        a, b = _pile_hash(S, cfg, Z, r, 23)
        if cfg[RSTACK] == 1:
            s1 = _mix(s1 ^ a)
            s2 = _mix(s2 ^ b)
        else:
            s1 += a
            s2 += b
    return _mix(h1 ^ s1), _mix(h2 ^ s2)


@njit(cache=True)
def key_parts(S, cfg, Z):
    """The parts of state S's key: (h1, h2) of everything but the stock and the waste, (a, b)
    of those, and the waste position ``m`` of a stock cycle (:func:`_cycle_pos`; -2 when the
    stock and waste are keyed as two piles). ``_join`` makes the key."""
    h1, h2 = _hash_rest(S, cfg, Z)
    if _cycle_keyed(S, cfg):
        a, b = _cycle_hash(S, cfg, Z)
        return h1, h2, a, b, _cycle_pos(S, cfg)
    st = cfg[T] + cfg[R]
    a, b = _pile_hash(S, cfg, Z, st, 37)
    a2, b2 = _pile_hash(S, cfg, Z, st + 1, 41)
    return h1, h2, _mix(a ^ _mix(a2 + np.uint64(1))), _mix(b ^ _mix(b2 + np.uint64(3))), -2


@njit(cache=True)
def state_hash2(S, cfg, Z):
    """Two independent 64-bit keys of state S (pile-permutation invariant where allowed).

    With unlimited redeals the pass count is not keyed and the stock and waste are keyed as
    one cycle plus where the waste ends, only where that matters (:func:`_cycle_pos`): with
    a waste of a multiple of the draw count, or an empty stock, the same cards are reachable
    as after a redeal."""
    h1, h2, a, b, m = key_parts(S, cfg, Z)
    return _join(h1, h2, a, b, m)


@njit(cache=True)
def stock_dominated(S, cfg, tab, h1, h2, a, b, m):
    """Whether a state that S never does better than is in the table ``tab`` (stock dominance
    of a draw-k stock with unlimited redeals, ``cfg[SDOM]``); (h1, h2, a, b, m): S's
    :func:`key_parts`.

    Write X for the stock cycle (waste bottom first, then stock top first) and w for the
    waste size. The cards playable from the stock are those at the positions reachable by
    dealing k at a time and redealing: P(w) = {w, w+k, ...} with the end of X and the
    multiples of k. A played card leaves X and the waste its predecessors, whatever w was,
    and no other move reads w. So a state with waste w' = w - k, w - 2k, ... (P(w') contains
    P(w)) or with w not a multiple of k against a fresh pass (P contains the multiples of k)
    is at least as good as S with everything else equal: whatever wins from S wins from it
    by the same moves. If it was searched already (or is being searched), S need not be."""
    if cfg[SDOM] == 0 or m < -1:
        return False
    st = cfg[T] + cfg[R]
    k = cfg[DCOUNT]
    if m >= 0:
        w = m - k
        while w > 0:
            g1, g2 = _join(h1, h2, a, b, w)
            if tt_contains(tab, g1, g2):
                return True
            w -= k
        return False
    tot = S[cfg[OFF_L] + st + 1] + S[cfg[OFF_L] + st]
    for w in range(1, tot):
        if w % k != 0:
            g1, g2 = _join(h1, h2, a, b, w)
            if tt_contains(tab, g1, g2):
                return True
    return False
