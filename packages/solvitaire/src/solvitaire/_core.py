"""Compiled (numba) core: state encoding, move generation, move application and the DFS.

Everything compiled lives in this one module so that numba's on-disk cache (``cache=True``)
is invalidated whenever any of it changes.

A state is one ``int16`` vector. Layout (offsets stored in ``cfg``):
``[passes, hole top, foundation counts (NF), cells (C), pile lengths (NP), face-down counts (T),
pile data (NP x CAP)]``; piles are the T tableau piles, the R reserve piles, the stock and the
waste, bottom card first. A move is six ``int32``: ``kind, a, b, n, steps, redeals``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# cfg indices
T, R, C, NF, MR, BUILD, GPOL, GMODE, SPACES, FPRES, FREM, FCOMP, HPRES, HLOOP = range(14)
DTYPE, DCOUNT, REDEALS, RSTACK, BASE, DOM, CAP, NCARDS, OFF_F, OFF_C, OFF_L, OFF_D = range(14, 26)
OFF_DATA, SSIZE, NP, SYM, FDOWN = range(26, 31)
NCFG = 32

# move kinds
K_T2F, K_T2T, K_T2C, K_C2T, K_C2F, K_R2T, K_R2F, K_F2T, K_W, K_DEAL = range(10)
K_T2H, K_C2H, K_R2H, K_SPIDER, K_R2C = range(10, 15)
MAX_MOVES_NODE = 4096


@njit(cache=True, inline="always")
def _len(S, cfg, p):
    return S[cfg[OFF_L] + p]


@njit(cache=True, inline="always")
def _at(S, cfg, p, i):
    return S[cfg[OFF_DATA] + p * cfg[CAP] + i]


@njit(cache=True, inline="always")
def _top(S, cfg, p):
    n = S[cfg[OFF_L] + p]
    if n == 0:
        return 0
    return S[cfg[OFF_DATA] + p * cfg[CAP] + n - 1]


@njit(cache=True, inline="always")
def _push(S, cfg, p, c):
    n = S[cfg[OFF_L] + p]
    S[cfg[OFF_DATA] + p * cfg[CAP] + n] = c
    S[cfg[OFF_L] + p] = n + 1


@njit(cache=True, inline="always")
def _pop(S, cfg, p):
    n = S[cfg[OFF_L] + p] - 1
    S[cfg[OFF_L] + p] = n
    c = S[cfg[OFF_DATA] + p * cfg[CAP] + n]
    S[cfg[OFF_DATA] + p * cfg[CAP] + n] = 0
    return c


@njit(cache=True, inline="always")
def _builds(pol, lower, upper, base, mr):
    if ((lower >> 2) - base) % mr != ((upper >> 2) - base) % mr - 1:
        return False
    if pol == 0:
        return True
    if pol == 1:
        return (lower & 1) != (upper & 1)
    if pol == 2:
        return (lower & 3) == (upper & 3)
    return False


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


@njit(cache=True)
def normalise(S, cfg):
    """Auto-fill spaces (auto-* policies) and turn up the top card of every tableau pile."""
    sp = cfg[SPACES]
    nt = cfg[T]
    stock = nt + cfg[R]
    waste = stock + 1
    if sp >= 3:
        for j in range(nt):
            if _len(S, cfg, j) != 0:
                continue
            done = False
            if sp == 3 or sp == 4:
                for r in range(nt, nt + cfg[R]):
                    if _len(S, cfg, r) > 0:
                        _push(S, cfg, j, _pop(S, cfg, r))
                        done = True
                        break
            if not done and sp == 4 and _len(S, cfg, waste) > 0:
                _push(S, cfg, j, _pop(S, cfg, waste))
            if not done and sp == 5:
                if _len(S, cfg, waste) > 0:
                    _push(S, cfg, j, _pop(S, cfg, waste))
                elif _len(S, cfg, stock) > 0:
                    _push(S, cfg, j, _pop(S, cfg, stock))
    od = cfg[OFF_D]
    for j in range(nt):
        n = _len(S, cfg, j)
        if S[od + j] >= n:
            S[od + j] = max(n - 1, 0)


@njit(cache=True)
def won(S, cfg):
    if cfg[FPRES]:
        for f in range(cfg[NF]):  # noqa: SIM110 - explicit loops compile best in numba
            if S[cfg[OFF_F] + f] != cfg[MR]:
                return False
        return True
    for p in range(cfg[NP]):
        if _len(S, cfg, p) != 0:
            return False
    for i in range(cfg[C]):  # noqa: SIM110
        if S[cfg[OFF_C] + i] != 0:
            return False
    return True


@njit(cache=True)
def _waste_card(S, cfg, m):
    """Card at position m-1 of the stock cycle X = waste (bottom→top) + stock (top→bottom)."""
    stock = cfg[T] + cfg[R]
    nw = _len(S, cfg, stock + 1)
    i = m - 1
    if i < nw:
        return _at(S, cfg, stock + 1, i)
    ns = _len(S, cfg, stock)
    return _at(S, cfg, stock, ns - 1 - (i - nw))


@njit(cache=True)
def _add(mv, k, kind, a, b, n, steps, red):
    mv[k, 0] = kind
    mv[k, 1] = a
    mv[k, 2] = b
    mv[k, 3] = n
    mv[k, 4] = steps
    mv[k, 5] = red
    return k + 1


@njit(cache=True)
def dominance(S, cfg, mv, k):
    """Write a safe automatic foundation move at ``mv[k]``; return k+1, or k when none."""
    if cfg[DOM] == 0:
        return k
    nt = cfg[T]
    nsrc = nt + cfg[C] + cfg[R]
    for s in range(nsrc):
        if s < nt:
            c = _top(S, cfg, s)
        elif s < nt + cfg[C]:
            c = S[cfg[OFF_C] + s - nt]
        else:
            c = _top(S, cfg, s - cfg[C])
        if c == 0:
            continue
        f = found_target(S, cfg, c)
        if f < 0:
            continue
        pos = S[cfg[OFF_F] + f] + 1
        ok = True
        b = cfg[BUILD]
        if b == 0:
            for g in range(cfg[NF]):
                if g != f and S[cfg[OFF_F] + g] < pos - 2:
                    ok = False
        elif b == 1:
            a1 = True
            a2 = True
            for g in range(cfg[NF]):
                if g == f:
                    continue
                cnt = S[cfg[OFF_F] + g]
                if (g & 1) != (c & 1):
                    if cnt < pos - 2:
                        a1 = False
                    if cnt < pos - 1:
                        a2 = False
                elif cnt < pos - 3:
                    a1 = False
            ok = a1 or (a2 and cfg[FREM] == 0)
        if not ok:
            continue
        if s < nt:
            return _add(mv, k, K_T2F, s, 0, 1, 0, 0)
        if s < nt + cfg[C]:
            return _add(mv, k, K_C2F, s - nt, 0, 1, 0, 0)
        return _add(mv, k, K_R2F, s - nt - cfg[C], 0, 1, 0, 0)
    return k


@njit(cache=True)
def _first_empty(S, cfg):
    for j in range(cfg[T]):
        if _len(S, cfg, j) == 0:
            return j
    return -1


@njit(cache=True)
def _place_targets(S, cfg, c, skip, mv, k, kind, a, n, steps, red, first_empty):
    for j in range(cfg[T]):
        if j == skip:
            continue
        if _len(S, cfg, j) == 0:
            if cfg[SYM] == 1 and j != first_empty:
                continue
            if space_ok(cfg, c):
                k = _add(mv, k, kind, a, j, n, steps, red)
        elif _builds(cfg[BUILD], c, _top(S, cfg, j), cfg[BASE], cfg[MR]):
            k = _add(mv, k, kind, a, j, n, steps, red)
    return k


@njit(cache=True)
def gen_moves(S, cfg, mv, k):
    """Append every (pruned) legal move of state S at mv[k:], most promising first."""
    nt = cfg[T]
    nc = cfg[C]
    oc = cfg[OFF_C]
    fe = _first_empty(S, cfg)
    free_cell = -1
    for i in range(nc):
        if S[oc + i] == 0:
            free_cell = i
            break
    stock = nt + cfg[R]
    # spider: complete suits home
    if cfg[FPRES] and cfg[FCOMP]:
        mr = cfg[MR]
        for i in range(nt):
            n = _len(S, cfg, i)
            if n - S[cfg[OFF_D] + i] < mr:
                continue
            top = _at(S, cfg, i, n - 1)
            ok = (top >> 2) == 1
            for x in range(mr):
                c = _at(S, cfg, i, n - 1 - x)
                if (c >> 2) != x + 1 or (c & 3) != (top & 3):
                    ok = False
                    break
            if ok:
                k = _add(mv, k, K_SPIDER, i, 0, mr, 0, 0)
    # to foundations / hole
    for i in range(nt):
        c = _top(S, cfg, i)
        if c == 0:
            continue
        if found_target(S, cfg, c) >= 0:
            k = _add(mv, k, K_T2F, i, 0, 1, 0, 0)
        if hole_ok(S, cfg, c):
            k = _add(mv, k, K_T2H, i, 0, 1, 0, 0)
    for i in range(nc):
        c = S[oc + i]
        if c == 0:
            continue
        if found_target(S, cfg, c) >= 0:
            k = _add(mv, k, K_C2F, i, 0, 1, 0, 0)
        if hole_ok(S, cfg, c):
            k = _add(mv, k, K_C2H, i, 0, 1, 0, 0)
    for r in range(cfg[R]):
        c = _top(S, cfg, nt + r)
        if c == 0:
            continue
        if found_target(S, cfg, c) >= 0:
            k = _add(mv, k, K_R2F, r, 0, 1, 0, 0)
        if hole_ok(S, cfg, c):
            k = _add(mv, k, K_R2H, r, 0, 1, 0, 0)
    # cells to tableau
    for i in range(nc):
        c = S[oc + i]
        if c != 0:
            k = _place_targets(S, cfg, c, -1, mv, k, K_C2T, i, 1, 0, 0, fe)
    # tableau to tableau (single cards then groups)
    gm = cfg[GMODE]
    for i in range(nt):
        n = _len(S, cfg, i)
        if n == 0:
            continue
        run = run_length(S, cfg, i) if gm != 0 else 1
        for g in range(1, run + 1):
            if g > 1:
                if gm == 2 and not (g == n and S[cfg[OFF_D] + i] == 0):
                    continue
                if gm == 3 and g != run:
                    continue
            if gm == 4 and g < run and found_target(S, cfg, _at(S, cfg, i, n - g - 1)) < 0:
                continue
            c = _at(S, cfg, i, n - g)
            whole = g == n and S[cfg[OFF_D] + i] == 0
            for j in range(nt):
                if j == i:
                    continue
                if _len(S, cfg, j) == 0:
                    if cfg[SYM] == 1 and (whole or j != fe):
                        continue
                    if space_ok(cfg, c):
                        k = _add(mv, k, K_T2T, i, j, g, 0, 0)
                elif _builds(cfg[BUILD], c, _top(S, cfg, j), cfg[BASE], cfg[MR]):
                    k = _add(mv, k, K_T2T, i, j, g, 0, 0)
    # stock / waste (k+ compound moves)
    if cfg[DTYPE] == 0 and cfg[SSIZE] > 0:
        nw = _len(S, cfg, stock + 1)
        tot = nw + _len(S, cfg, stock)
        if tot > 0:
            kk = cfg[DCOUNT]
            m = nw
            steps = 0
            red = 0
            seen0 = np.uint64(0)
            seen1 = np.uint64(0)
            while True:
                if m > 0:
                    c = _waste_card(S, cfg, m)
                    if found_target(S, cfg, c) >= 0:
                        k = _add(mv, k, K_W, m, 0, 0, steps, red)
                    for j in range(nt):
                        if _len(S, cfg, j) == 0:
                            if cfg[SYM] == 1 and j != fe:
                                continue
                            if space_ok(cfg, c):
                                k = _add(mv, k, K_W, m, j, 1, steps, red)
                        elif _builds(cfg[BUILD], c, _top(S, cfg, j), cfg[BASE], cfg[MR]):
                            k = _add(mv, k, K_W, m, j, 1, steps, red)
                    if free_cell >= 0:
                        k = _add(mv, k, K_W, m, free_cell, 2, steps, red)
                if cfg[REDEALS] < 0:
                    bit = np.uint64(1) << np.uint64(m & 63)
                    if m < 64:
                        if seen0 & bit:
                            break
                        seen0 |= bit
                    else:
                        if seen1 & bit:
                            break
                        seen1 |= bit
                if m < tot:
                    m = min(m + kk, tot)
                elif cfg[REDEALS] < 0 or S[0] + red < cfg[REDEALS]:
                    m = 0
                    red += 1
                else:
                    break
                steps += 1
    # reserve to tableau
    for r in range(cfg[R]):
        c = _top(S, cfg, nt + r)
        if c != 0:
            k = _place_targets(S, cfg, c, -1, mv, k, K_R2T, r, 1, 0, 0, fe)
    # worrying back
    if cfg[FPRES] and cfg[FREM]:
        for f in range(cfg[NF]):
            if S[cfg[OFF_F] + f] > 0:
                k = _place_targets(S, cfg, found_top(S, cfg, f), -1, mv, k, K_F2T, f, 1, 0, 0, fe)
    # into cells
    if free_cell >= 0:
        for i in range(nt):
            if _len(S, cfg, i) > 0:
                k = _add(mv, k, K_T2C, i, free_cell, 1, 0, 0)
        for r in range(cfg[R]):
            if _len(S, cfg, nt + r) > 0:
                k = _add(mv, k, K_R2C, r, free_cell, 1, 0, 0)
    # deal the stock to every pile / to the hole
    if cfg[DTYPE] != 0 and _len(S, cfg, stock) > 0:
        k = _add(mv, k, K_DEAL, 0, 0, 1, 0, 0)
    return k


@njit(cache=True)
def apply_move(S, cfg, mv, i):
    kind = mv[i, 0]
    a = mv[i, 1]
    b = mv[i, 2]
    n = mv[i, 3]
    nt = cfg[T]
    oc = cfg[OFF_C]
    of = cfg[OFF_F]
    stock = nt + cfg[R]
    c = 0
    if kind == K_T2T:
        ln = _len(S, cfg, a)
        for x in range(ln - n, ln):
            _push(S, cfg, b, _at(S, cfg, a, x))
        for _x in range(n):
            _pop(S, cfg, a)
    elif kind == K_SPIDER:
        top = _top(S, cfg, a)
        for _x in range(n):
            _pop(S, cfg, a)
        for f in range(cfg[NF]):
            if (f & 3) == (top & 3) and S[of + f] == 0:
                S[of + f] = cfg[MR]
                break
    elif kind == K_DEAL:
        if cfg[DTYPE] == 2:
            S[1] = _pop(S, cfg, stock)
        else:
            for j in range(nt):
                if _len(S, cfg, j + 0) >= 0 and _len(S, cfg, stock) > 0:
                    _push(S, cfg, j, _pop(S, cfg, stock))
    elif kind == K_W:
        m = a
        nw = _len(S, cfg, stock + 1)
        ns = _len(S, cfg, stock)
        nw + ns
        # rotate the cycle so that waste = X[0:m-1] and stock (top first) = X[m:]
        c = _waste_card(S, cfg, m)
        if m > nw:  # cards X[nw:m] come off the stock top onto the waste
            for _x in range(m - nw):
                _push(S, cfg, stock + 1, _pop(S, cfg, stock))
        elif m < nw:  # a redeal happened: X[m:nw] go back on top of the stock
            for _x in range(nw - m):
                _push(S, cfg, stock, _pop(S, cfg, stock + 1))
        _pop(S, cfg, stock + 1)
        S[0] += mv[i, 5]
        if n == 0:
            S[of + found_target(S, cfg, c)] += 1
        elif n == 1:
            _push(S, cfg, b, c)
        else:
            S[oc + b] = c
    else:
        # single card: take
        if kind == K_T2F or kind == K_T2C or kind == K_T2H:  # noqa: SIM109
            c = _pop(S, cfg, a)
        elif kind == K_C2T or kind == K_C2F or kind == K_C2H:  # noqa: SIM109
            c = S[oc + a]
            S[oc + a] = 0
        elif kind == K_R2T or kind == K_R2F or kind == K_R2H or kind == K_R2C:  # noqa: SIM109
            c = _pop(S, cfg, nt + a)
        elif kind == K_F2T:
            c = found_top(S, cfg, a)
            S[of + a] -= 1
        # put
        if kind == K_T2F or kind == K_C2F or kind == K_R2F:  # noqa: SIM109
            S[of + found_target(S, cfg, c)] += 1
        elif kind == K_T2H or kind == K_C2H or kind == K_R2H:  # noqa: SIM109
            S[1] = c
        elif kind == K_T2C or kind == K_R2C:  # noqa: SIM109
            S[oc + b] = c
        else:
            _push(S, cfg, b, c)
    normalise(S, cfg)


# ---------------------------------------------------------------------------- search
# Compiled depth-first search with a 128-bit open-addressing transposition table.
#
# The state key is permutation-invariant over tableau piles (a sum of per-pile mixed hashes),
# over cells and over unstacked reserve piles, so symmetric positions share one table entry.
# Two independent 64-bit hashes are stored per entry (no full-key check; the chance of a false
# "seen" in a run of 10^8 states is about 10^16 / 2^128, i.e. negligible).
# The search is resumable: :func:`search_chunk` runs at most ``budget`` nodes and returns, so the
# caller can enforce wall-clock timeouts between chunks.
#

RUNNING, SOLVED, UNSOLVABLE, MEMORY, BUFFER = 0, 1, 2, 3, 4
# ctl indices
D_DEPTH, D_STATUS, D_NODES, D_UNIQUE, D_DOM, D_MAXD, D_BACK, D_FILL = range(8)


@njit(cache=True, inline="always")
def _mix(x):
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def _seq_hash(S, cfg, p, salt, extra):
    base = cfg[OFF_DATA] + p * cfg[CAP]
    n = S[cfg[OFF_L] + p]
    h = _mix(np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(extra + 1))
    for i in range(n):
        h = _mix(h ^ np.uint64(S[base + i] + 1) * np.uint64(0x100000001B3))
    return _mix(h + np.uint64(n))


@njit(cache=True)
def state_hash(S, cfg, salt):
    """64-bit key of state S under seed ``salt`` (different salts give independent hashes)."""
    nt = cfg[T]
    h = _mix(np.uint64(salt) + np.uint64(S[0]) * np.uint64(131) + np.uint64(S[1]))
    of = cfg[OFF_F]
    for f in range(of, cfg[OFF_C]):
        h = _mix(h ^ np.uint64(S[f] + 7 * (f - of + 1)))
    acc = np.uint64(0)
    for j in range(nt):
        ph = _seq_hash(S, cfg, j, salt + 11, S[cfg[OFF_D] + j])
        if cfg[SYM] == 1:
            acc += _mix(ph)
        else:
            acc = _mix(acc ^ ph) + np.uint64(j + 1)
    h = _mix(h ^ acc)
    acc = np.uint64(0)
    oc = cfg[OFF_C]
    for i in range(cfg[C]):
        acc += _mix(np.uint64(S[oc + i] + 1) + np.uint64(salt) * np.uint64(977))
    h = _mix(h ^ acc)
    acc = np.uint64(0)
    for r in range(nt, nt + cfg[R]):
        ph = _seq_hash(S, cfg, r, salt + 23, 0)
        if cfg[RSTACK] == 1:
            acc = _mix(acc ^ ph)
        else:
            acc += _mix(ph)
    h = _mix(h ^ acc)
    st = nt + cfg[R]
    h = _mix(h ^ _seq_hash(S, cfg, st, salt + 37, 0))
    h = _mix(h ^ _seq_hash(S, cfg, st + 1, salt + 41, 0))
    return h


@njit(cache=True)
def tt_insert(tab1, tab2, h1, h2, ctl):
    """Insert (h1, h2); return True when it was new. Sets MEMORY status when the table is full."""
    mask = np.uint64(tab1.shape[0] - 1)
    if h1 == 0:
        h1 = np.uint64(1)
    i = h1 & mask
    while True:
        v = tab1[i]
        if v == 0:
            if ctl[D_FILL] * 10 >= tab1.shape[0] * 9:
                ctl[D_STATUS] = MEMORY
                return False
            tab1[i] = h1
            tab2[i] = h2
            ctl[D_FILL] += 1
            return True
        if v == h1 and tab2[i] == h2:
            return False
        i = (i + np.uint64(1)) & mask


@njit(cache=True)
def expand(states, d, cfg, mv, fs, fe, fn, tab1, tab2, ctl):
    """Open node ``d`` (its state is ``states[d]``). Returns False if it is a transposition."""
    S = states[d]
    start = fe[d - 1] if d > 0 else 0
    k = dominance(S, cfg, mv, start)
    if k == start:
        new = tt_insert(tab1, tab2, state_hash(S, cfg, 1), state_hash(S, cfg, 2), ctl)
        if not new:
            return False
        ctl[D_UNIQUE] += 1
        k = gen_moves(S, cfg, mv, start)
    else:
        ctl[D_DOM] += 1
    fs[d] = start
    fe[d] = k
    fn[d] = start
    return True


@njit(cache=True)
def search_chunk(states, cfg, mv, fs, fe, fn, path, tab1, tab2, ctl, budget, max_states):
    """Run the DFS for at most ``budget`` nodes; returns the status (RUNNING when unfinished)."""
    maxd = states.shape[0] - 1
    while budget > 0:
        if ctl[D_STATUS] != RUNNING:
            return ctl[D_STATUS]
        d = ctl[D_DEPTH]
        if fn[d] < fe[d]:
            if d + 1 >= maxd or fe[d] + MAX_MOVES_NODE > mv.shape[0]:
                return BUFFER  # the caller grows the stacks and calls again
            mi = fn[d]
            fn[d] = mi + 1
            states[d + 1, :] = states[d, :]
            apply_move(states[d + 1], cfg, mv, mi)
            path[d + 1] = mi
            ctl[D_NODES] += 1
            budget -= 1
            if won(states[d + 1], cfg):
                ctl[D_DEPTH] = d + 1
                ctl[D_STATUS] = SOLVED
                return SOLVED
            if max_states > 0 and ctl[D_NODES] >= max_states:
                return RUNNING
            if expand(states, d + 1, cfg, mv, fs, fe, fn, tab1, tab2, ctl):
                ctl[D_DEPTH] = d + 1
                if d + 1 > ctl[D_MAXD]:
                    ctl[D_MAXD] = d + 1
        else:
            if d == 0:
                ctl[D_STATUS] = UNSOLVABLE
                return UNSOLVABLE
            ctl[D_DEPTH] = d - 1
            ctl[D_BACK] += 1
    return ctl[D_STATUS]
