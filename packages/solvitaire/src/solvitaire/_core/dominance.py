"""Safe automatic moves to the foundations (Blake & Gent, sections 5.4.1 and 5.4.3)."""

from __future__ import annotations

from numba import njit

from .building import found_target
from .layout import (
    BUILD,
    DCOUNT,
    DOM,
    DTYPE,
    FREM,
    K_C2F,
    K_R2F,
    K_T2F,
    K_W,
    NF,
    OFF_C,
    OFF_D,
    OFF_F,
    REDEALS,
    SSIZE,
    C,
    R,
    T,
    _add,
    _len,
    _top,
    _waste_card,
)


@njit(cache=True)
def _safe(S, cfg, f, pos, c):
    """True when card ``c`` (rank position ``pos`` on foundation ``f``) may go up safely:
    the paper's dominance (Blake & Gent, section 5.4.1) for the game's build policy."""
    b = cfg[BUILD]
    of = cfg[OFF_F]
    if b == 0:
        for g in range(cfg[NF]):  # noqa: SIM110 - explicit loops compile best in numba
            if g != f and S[of + g] < pos - 2:
                return False
        return True
    if b == 1:
        a1 = True
        a2 = True
        for g in range(cfg[NF]):
            if g == f:
                continue
            cnt = S[of + g]
            if (g & 1) != (c & 1):
                if cnt < pos - 2:
                    a1 = False
                if cnt < pos - 1:
                    a2 = False
            elif cnt < pos - 3:
                a1 = False
        return a1 or (a2 and cfg[FREM] == 0)
    return True


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
        if not _safe(S, cfg, f, S[cfg[OFF_F] + f] + 1, c):
            continue
        if s < nt:
            k = _add(mv, k, K_T2F, s, f, 1, 0, 0)
            if S[cfg[OFF_D] + s] > 0 and _len(S, cfg, s) - 1 == S[cfg[OFF_D] + s]:
                mv[k - 1, 6] = 3
                return k
        elif s < nt + cfg[C]:
            k = _add(mv, k, K_C2F, s - nt, f, 1, 0, 0)
        else:
            k = _add(mv, k, K_R2F, s - nt - cfg[C], f, 1, 0, 0)
        mv[k - 1, 6] = 1
        return k
    # draw 1 with unlimited redeals: every stock card is always reachable, so the stock acts
    # like a reserve and its cards may go up by the same rule (Blake & Gent, section 5.4.3)
    if cfg[DTYPE] == 0 and cfg[SSIZE] > 0 and cfg[DCOUNT] == 1 and cfg[REDEALS] < 0:
        stock = nt + cfg[R]
        nw = _len(S, cfg, stock + 1)
        tot = nw + _len(S, cfg, stock)
        for m in range(1, tot + 1):
            c = _waste_card(S, cfg, m)
            f = found_target(S, cfg, c)
            if f < 0 or not _safe(S, cfg, f, S[cfg[OFF_F] + f] + 1, c):
                continue
            if m >= nw:
                k = _add(mv, k, K_W, m, f, 0, m - nw, 0)
            else:
                k = _add(mv, k, K_W, m, f, 0, tot - nw + 1 + m, 1)
            mv[k - 1, 6] = 1
            return k
    return k
