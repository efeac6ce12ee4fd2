"""Move application: a move applied to a state in place, then spaces filled and cards turned."""

from __future__ import annotations

from numba import njit

from .building import found_target, found_top
from .layout import (
    DTYPE,
    K_C2F,
    K_C2H,
    K_C2T,
    K_DEAL,
    K_F2T,
    K_R2C,
    K_R2F,
    K_R2H,
    K_R2T,
    K_SPIDER,
    K_T2C,
    K_T2F,
    K_T2H,
    K_T2T,
    K_W,
    MR,
    NF,
    OFF_C,
    OFF_D,
    OFF_F,
    REDEALS,
    SPACES,
    R,
    T,
    _at,
    _len,
    _pop,
    _push,
    _top,
    _waste_card,
)


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
        if cfg[REDEALS] > 0:  # only a limited number of passes needs counting
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
