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
    SUITSYM,
    C,
    R,
    T,
    sym_now,
)

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
def _pile_hash(S, cfg, Z, p, tag):
    """Two 64-bit hashes of pile ``p`` (its cards bottom first), salted by ``tag``."""
    base = cfg[OFF_DATA] + p * cfg[CAP]
    n = S[cfg[OFF_L] + p]
    a = np.uint64(tag) * np.uint64(0x9E3779B97F4A7C15)
    b = np.uint64(tag) * np.uint64(0xC2B2AE3D27D4EB4F)
    cm = -4 if cfg[SUITSYM] else -1
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
    for i in range(nw):
        c = S[bw + i]
        a ^= Z[0, i, c]
        b ^= Z[1, i, c]
    for i in range(ns):
        c = S[bs + ns - 1 - i]
        a ^= Z[0, nw + i, c]
        b ^= Z[1, nw + i, c]
    return _mix(a + np.uint64(nw + ns)), _mix(b ^ np.uint64(nw + ns))


@njit(cache=True)
def state_hash2(S, cfg, Z):
    """Two independent 64-bit keys of state S (pile-permutation invariant where allowed)."""
    nt = cfg[T]
    hole = S[1] & (-4 if cfg[SUITSYM] else -1)
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
    cmask = -4 if cfg[SUITSYM] else -1
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
    h1 = _mix(h1 ^ s1)
    h2 = _mix(h2 ^ s2)
    st = nt + cfg[R]
    if cfg[REDEALS] < 0 and cfg[DTYPE] == 0 and S[cfg[OFF_L] + st + 1] % cfg[DCOUNT] == 0:
        a, b = _cycle_hash(S, cfg, Z)
        h1 = _mix(h1 ^ a)
        h2 = _mix(h2 ^ b)
        return h1, h2
    a, b = _pile_hash(S, cfg, Z, st, 37)
    h1 = _mix(h1 ^ a)
    h2 = _mix(h2 ^ b)
    a, b = _pile_hash(S, cfg, Z, st + 1, 41)
    h1 = _mix(h1 ^ a)
    h2 = _mix(h2 ^ b)
    return h1, h2
