"""Which card may go where: building on tableau cards, foundations, the hole and spaces."""

from __future__ import annotations

import numpy as np
from numba import njit

from .layout import (
    BASE,
    BUILD,
    FCOMP,
    FDOWN,
    FPRES,
    GPOL,
    HLOOP,
    HPRES,
    MR,
    NF,
    OFF_D,
    OFF_F,
    SPACES,
    _at,
    _len,
    _top,
)


@njit(cache=True, inline="always")
def _builds(pol, lower, upper, base, mr):
    if base == 1:  # no wrap round the corner: plain rank test
        if (upper >> 2) - (lower >> 2) != 1:
            return False
    elif ((lower >> 2) - base) % mr != ((upper >> 2) - base) % mr - 1:
        return False
    if pol == 0:
        return True
    if pol == 1:
        return (lower & 1) != (upper & 1)
    if pol == 2:
        return (lower & 3) == (upper & 3)
    return False


@njit(cache=True, inline="always")
def _onto_mask(c, pol, base, mr):
    """Bit set of the card codes that card ``c`` may be built onto under build policy ``pol``
    (one rank higher, counted from the foundation base; suits by the policy)."""
    pos = ((c >> 2) - base) % mr
    if pos == mr - 1 or pol == 3:
        return np.uint64(0)
    up = ((base - 1 + pos + 1) % mr + 1) * 4  # code of the higher rank's first suit
    if pol == 0:
        return np.uint64(15) << np.uint64(up)
    if pol == 1:  # the two suits of the other colour (colour = suit & 1)
        return np.uint64(5 << (1 - (c & 1))) << np.uint64(up)
    return np.uint64(1) << np.uint64(up + (c & 3))


@njit(cache=True, inline="always")
def _rank_bits(lo, hi):
    """Bit set of every card code with a rank in ``lo..hi`` (empty when lo > hi)."""
    if lo > hi:
        return np.uint64(0)
    return ((np.uint64(1) << np.uint64(4 * hi + 4)) - np.uint64(1)) ^ (
        (np.uint64(1) << np.uint64(4 * lo)) - np.uint64(1)
    )


@njit(cache=True)
def found_next(S, cfg, f):
    n = S[cfg[OFF_F] + f]
    mr = cfg[MR]
    if n >= mr:
        return 0
    if cfg[FDOWN]:
        return (cfg[BASE] - 1 - n) % mr + 1
    return (cfg[BASE] - 1 + n) % mr + 1


@njit(cache=True)
def found_target(S, cfg, c):
    if cfg[FPRES] == 0 or cfg[FCOMP] == 1:
        return -1
    if cfg[NF] == 4 and cfg[BASE] == 1 and cfg[FDOWN] == 0:  # one deck, aces up: fast path
        f = c & 3
        return f if S[cfg[OFF_F] + f] + 1 == (c >> 2) else -1
    for f in range(cfg[NF]):
        if (f & 3) == (c & 3) and found_next(S, cfg, f) == (c >> 2):
            return f
    return -1


@njit(cache=True)
def found_top(S, cfg, f):
    n = S[cfg[OFF_F] + f]
    mr = cfg[MR]
    if cfg[FDOWN]:
        r = (cfg[BASE] - n) % mr + 1
    else:
        r = (cfg[BASE] + n - 2) % mr + 1
    return r * 4 + (f & 3)


@njit(cache=True)
def hole_ok(S, cfg, c):
    if cfg[HPRES] == 0:
        return False
    d = abs((c >> 2) - (S[1] >> 2))
    return d == 1 or (cfg[HLOOP] == 1 and d == cfg[MR] - 1)


@njit(cache=True)
def space_ok(cfg, c):
    sp = cfg[SPACES]
    if sp == 1 or cfg[BUILD] == 3:  # no-build games never fill spaces
        return False
    if sp == 2:
        return ((c >> 2) - cfg[BASE]) % cfg[MR] == cfg[MR] - 1
    return True


@njit(cache=True)
def can_place(S, cfg, c, j):
    t = _top(S, cfg, j)
    if t == 0:
        return space_ok(cfg, c)
    return _builds(cfg[BUILD], c, t, cfg[BASE], cfg[MR])


@njit(cache=True)
def run_length(S, cfg, i):
    n = _len(S, cfg, i)
    d = S[cfg[OFF_D] + i]
    run = 1
    while run < n - d and _builds(
        cfg[GPOL], _at(S, cfg, i, n - run), _at(S, cfg, i, n - run - 1), cfg[BASE], cfg[MR]
    ):
        run += 1
    return run
