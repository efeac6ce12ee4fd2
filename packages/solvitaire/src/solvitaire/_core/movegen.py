"""Move generation: every pruned legal move of a state, in the reference program's order."""

from __future__ import annotations

import numpy as np
from numba import njit

from .building import _builds, _onto_mask, found_target, found_top, hole_ok, run_length, space_ok
from .dominance import _safe
from .layout import (
    BASE,
    BUILD,
    DCOUNT,
    DOM,
    DTYPE,
    FCOMP,
    FPRES,
    FREM,
    GMODE,
    GPLACE,
    GPOL,
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
    ORDER,
    REDEALS,
    RPRUNE,
    SSIZE,
    C,
    R,
    T,
    _add,
    _at,
    _first_empty,
    _len,
    _top,
    _tops_and_space,
    _waste_card,
    sym_now,
)


@njit(cache=True)
def _place_targets(S, cfg, c, skip, mv, k, kind, a, n, steps, red, first_empty):
    for j in range(cfg[T]):
        if j == skip:
            continue
        if _len(S, cfg, j) == 0:
            if sym_now(S, cfg) and j != first_empty:
                continue
            if space_ok(cfg, c):
                k = _add(mv, k, kind, a, j, n, steps, red)
        elif _builds(cfg[BUILD], c, _top(S, cfg, j), cfg[BASE], cfg[MR]):
            k = _add(mv, k, kind, a, j, n, steps, red)
    return k


@njit(cache=True)
def dst_code(mv, i):
    """Where move ``i`` puts its card(s): tableau j -> j, cell c -> 1000 + c, foundation f ->
    2000 + f, anything else -1 (used to prune moving the same card twice in a row)."""
    kind = mv[i, 0]
    b = mv[i, 2]
    if kind == K_T2T or kind == K_C2T or kind == K_R2T or kind == K_F2T:  # noqa: SIM109
        return b
    if kind == K_T2C or kind == K_R2C:  # noqa: SIM109
        return 1000 + b
    if kind == K_T2F or kind == K_C2F or kind == K_R2F:  # noqa: SIM109
        return 2000 + b
    if kind == K_W:
        n = mv[i, 3]
        if n == 0:
            return 2000 + b
        if n == 1:
            return b
        return 1000 + b
    return -1


@njit(cache=True)
def _stock_moves(S, cfg, mv, k, mode, fe, free_cell):
    """Compound "k+" stock moves (Bjarnason et al.): every card reachable by dealing ``deal
    count`` cards at a time (and redealing), played to a foundation (mode 0), the tableau
    (mode 1) or a cell (mode 2) in one move."""
    nt = cfg[T]
    stock = nt + cfg[R]
    nw = _len(S, cfg, stock + 1)
    tot = nw + _len(S, cfg, stock)
    if tot == 0:
        return k
    kk = cfg[DCOUNT]
    m = nw
    steps = 0
    red = 0
    seen0 = np.uint64(0)
    seen1 = np.uint64(0)
    base = cfg[BASE]
    mr = cfg[MR]
    tops = np.uint64(0)  # the tableau tops (bit = card code); a space takes any card it may
    space = False
    if mode == 1:
        tops, space = _tops_and_space(S, cfg, nt)
    while True:
        if m > 0:
            c = _waste_card(S, cfg, m)
            if mode == 0:
                f = found_target(S, cfg, c)
                if f >= 0:
                    k = _add(mv, k, K_W, m, f, 0, steps, red)
            elif mode == 1:
                onto = (tops & _onto_mask(c, cfg[BUILD], base, mr)) != 0
                if onto or (space and space_ok(cfg, c)):
                    for j in range(nt):
                        if _len(S, cfg, j) == 0:
                            if sym_now(S, cfg) and j != fe:
                                continue
                            if space_ok(cfg, c):
                                k = _add(mv, k, K_W, m, j, 1, steps, red)
                        elif _builds(cfg[BUILD], c, _top(S, cfg, j), base, mr):
                            k = _add(mv, k, K_W, m, j, 1, steps, red)
            elif free_cell >= 0:
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
    return k


@njit(cache=True)
def pile_order(S, cfg, order):
    """Fill ``order[:T]`` with the tableau piles in the order their moves are tried: with
    ``ORDER`` set, shortest pile first (moves off short piles, which empty them, and onto
    short piles come first, as in the reference program's canonical pile order); otherwise
    the last pile first. ``ORDER`` 4 (the reference program's order): shortest first where
    the piles are interchangeable (its canonical pile order), else the last pile first."""
    nt = cfg[T]
    if cfg[ORDER] == 0 or (cfg[ORDER] == 4 and not sym_now(S, cfg)):
        for x in range(nt):
            order[x] = nt - 1 - x
        return
    # sort keys: the length, then up to 9 cards (6 bits each; bottom first, or top first for
    # ``ORDER`` 3), then the pile index; beyond 9 equal cards (two decks only) ties go by index
    # instead of by the further cards (a move order only: it never changes an answer)
    keys = np.empty(nt, np.int64)
    top = cfg[ORDER] == 3
    for p in range(nt):
        n = np.int64(_len(S, cfg, p))
        key = n
        for y in range(9):
            c = np.int64(0)
            if y < n:
                c = np.int64(_at(S, cfg, p, n - 1 - y if top else y))
            key = key * 64 + c
        keys[p] = key
    for x in range(nt):  # insertion sort: T is at most a few dozen
        p = x
        y = x
        while y > 0 and keys[p] < keys[order[y - 1]]:
            order[y] = order[y - 1]
            y -= 1
        order[y] = p


@njit(cache=True)
def _tableau_moves(S, cfg, mv, k, fe, singles, pdst, psrc, order):
    """Tableau-to-tableau moves: single cards (``singles``) or built groups of 2+ cards; under
    "partial-if-card-above-buildable" (GMODE 4) every size is a group, and a part of a built
    group may go onto a card only when the card it uncovers can go to a foundation (the
    reference's rule; Blake & Gent section 5.4.2). The top card of the pile the previous move
    built on (``pdst``) is not moved on alone: it could have gone to its new place directly
    (the same position, reached by a legal move). Exceptions, where the two-step route can
    reach what no direct move does: back to the pile it came from (``psrc``: a card there may
    have been turned face up meanwhile), and when it lies alone on a former space (a part of a
    group may go onto a space freely but onto a card only under the PIB rule).
    With GPLACE a group of 2+ cards goes onto a card only under the group build policy."""
    nt = cfg[T]
    gm = cfg[GMODE]
    od = cfg[OFF_D]
    sym = sym_now(S, cfg)
    base = cfg[BASE]
    mr = cfg[MR]
    # ranks of the top cards (bit r) and whether a space exists: most (pile, size) pairs have
    # no target at all, and their scan of the piles is skipped
    tops, space = _tops_and_space(S, cfg, nt)
    # ORDER 4 (the reference program's order): per source pile, every target pile in turn
    # and, per target, the largest group first (below, otherwise: per size, every target)
    by_target = cfg[ORDER] == 4 and not singles
    for ii in range(nt):
        i = order[ii]
        n = _len(S, cfg, i)
        if n == 0:
            continue
        run = 1 if (singles or gm == 0) else run_length(S, cfg, i)  # singles: g = 1 only
        glo = 1
        ghi = run
        if gm == 4:
            if singles:
                continue
        elif singles:
            ghi = 1
        else:
            glo = 2
        if by_target:
            for jj in range(nt):
                j = order[jj]
                if j != i:
                    for g in range(ghi, glo - 1, -1):
                        k = _group_move(S, cfg, mv, k, i, j, g, n, run, sym, space, tops, fe,
                                        pdst, psrc)  # fmt: skip
            continue
        for gg in range(ghi - glo + 1):
            # with ORDER set the largest group is tried first (a whole run onto a space)
            g = ghi - gg if cfg[ORDER] != 0 else glo + gg
            if gm == 2 and g > 1 and not (g == n and S[od + i] == 0):
                continue
            if gm == 3 and g > 1 and g != run:
                continue
            c = _at(S, cfg, i, n - g)
            pol = cfg[GPOL] if (g > 1 and cfg[GPLACE] == 1) else cfg[BUILD]
            whole = g == n and S[od + i] == 0
            # a space takes c only when the spaces policy allows it and, with pile symmetry,
            # the group is not a whole pile (that would only swap two piles)
            to_space = space and not (sym and whole) and space_ok(cfg, c)
            if not to_space and (tops & _onto_mask(c, pol, base, mr)) == 0:
                continue  # no pile top takes c (and no space)
            rp = g == 1 and i == pdst and n > 1 and cfg[RPRUNE] == 1
            for jj in range(nt):
                j = order[jj]
                if j == i or (rp and j != psrc):
                    continue
                if _len(S, cfg, j) == 0:
                    if sym and (whole or j != fe):
                        continue
                    if space_ok(cfg, c):
                        k = _add(mv, k, K_T2T, i, j, g, 0, 0)
                elif _builds(pol, c, _top(S, cfg, j), cfg[BASE], cfg[MR]):
                    if gm == 4 and g < run and found_target(S, cfg, _at(S, cfg, i, n - g - 1)) < 0:
                        continue
                    k = _add(mv, k, K_T2T, i, j, g, 0, 0)
    return k


@njit(cache=True, inline="always")
def _group_move(S, cfg, mv, k, i, j, g, n, run, sym, space, tops, fe, pdst, psrc):
    """Append the move of the top ``g`` cards of tableau pile ``i`` (``n`` cards, a built run
    of ``run``) onto pile ``j`` when it is legal and not pruned (see :func:`_tableau_moves`)."""
    gm = cfg[GMODE]
    od = cfg[OFF_D]
    if gm == 2 and g > 1 and not (g == n and S[od + i] == 0):
        return k
    if gm == 3 and g > 1 and g != run:
        return k
    c = _at(S, cfg, i, n - g)
    pol = cfg[GPOL] if (g > 1 and cfg[GPLACE] == 1) else cfg[BUILD]
    whole = g == n and S[od + i] == 0
    # a space takes c only when the spaces policy allows it and, with pile symmetry, the group
    # is not a whole pile (that would only swap two piles)
    to_space = space and not (sym and whole) and space_ok(cfg, c)
    if not to_space and (tops & _onto_mask(c, pol, cfg[BASE], cfg[MR])) == 0:
        return k  # no pile top takes c (and no space)
    if g == 1 and i == pdst and n > 1 and cfg[RPRUNE] == 1 and j != psrc:
        return k
    if _len(S, cfg, j) == 0:
        if sym and (whole or j != fe):
            return k
        if space_ok(cfg, c):
            k = _add(mv, k, K_T2T, i, j, g, 0, 0)
    elif _builds(pol, c, _top(S, cfg, j), cfg[BASE], cfg[MR]):
        if gm == 4 and g < run and found_target(S, cfg, _at(S, cfg, i, n - g - 1)) < 0:
            return k
        k = _add(mv, k, K_T2T, i, j, g, 0, 0)
    return k


@njit(cache=True)
def gen_moves(S, cfg, mv, k, pdst, pflags, psrc):
    """Append every (pruned) legal move of state S at mv[k:], most promising first.

    ``pdst``/``pflags``: destination code and flags of the move that led here (-1/0 at the
    root); ``psrc``: its source tableau pile when it was a tableau-to-tableau move, else -1.
    As in the reference, the card just moved is not moved on at once (to a cell or foundation
    unless the move was automatic; on the tableau see :func:`_tableau_moves`), a card just put
    on a foundation is not taken back unless that move turned a card face up, and a foundation
    card is never taken back when the dominance would put it straight back. The order follows
    the reference (section 2.6)."""
    nt = cfg[T]
    nc = cfg[C]
    oc = cfg[OFF_C]
    of = cfg[OFF_F]
    od = cfg[OFF_D]
    fe = _first_empty(S, cfg)
    free_cell = -1
    for i in range(nc):
        if S[oc + i] == 0:
            free_cell = i
            break
    stock = nt + cfg[R]
    waste_stock = cfg[DTYPE] == 0 and cfg[SSIZE] > 0
    redeal = cfg[REDEALS] != 0
    pdom = (pflags & 1) != 0
    # spider: complete suits home
    if cfg[FPRES] and cfg[FCOMP]:
        mr = cfg[MR]
        for i in range(nt):
            n = _len(S, cfg, i)
            if n - S[od + i] < mr:
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
    for r in range(cfg[R]):
        c = _top(S, cfg, nt + r)
        if c == 0:
            continue
        f = found_target(S, cfg, c)
        if f >= 0:
            k = _add(mv, k, K_R2F, r, f, 1, 0, 0)
        if hole_ok(S, cfg, c):
            k = _add(mv, k, K_R2H, r, 0, 1, 0, 0)
    for i in range(nc):
        c = S[oc + i]
        if c == 0 or (pdst == 1000 + i and not pdom):
            continue
        f = found_target(S, cfg, c)
        if f >= 0:
            k = _add(mv, k, K_C2F, i, f, 1, 0, 0)
        if hole_ok(S, cfg, c):
            k = _add(mv, k, K_C2H, i, 0, 1, 0, 0)
    order = np.empty(nt, np.int64)
    pile_order(S, cfg, order)
    for ii in range(nt):
        i = order[ii] if cfg[ORDER] == 4 else ii  # (the reference's order: as its other moves)
        c = _top(S, cfg, i)
        if c == 0 or (pdst == i and not pdom):
            continue
        f = found_target(S, cfg, c)
        if f >= 0:
            k = _add(mv, k, K_T2F, i, f, 1, 0, 0)
            if S[od + i] > 0 and _len(S, cfg, i) - 1 == S[od + i]:
                mv[k - 1, 6] = 2  # turns a card face up
        if hole_ok(S, cfg, c):
            k = _add(mv, k, K_T2H, i, 0, 1, 0, 0)
    if waste_stock and redeal:
        k = _stock_moves(S, cfg, mv, k, 0, fe, free_cell)
    # cells to tableau
    for i in range(nc):
        c = S[oc + i]
        if c != 0 and pdst != 1000 + i:
            k = _place_targets(S, cfg, c, -1, mv, k, K_C2T, i, 1, 0, 0, fe)
    # tableau to tableau: single cards, then built groups
    if cfg[GMODE] != 4:  # (under PIB every size, 1 included, is made by the group pass)
        k = _tableau_moves(S, cfg, mv, k, fe, True, pdst, psrc, order)
    if cfg[GMODE] != 0:
        k = _tableau_moves(S, cfg, mv, k, fe, False, pdst, psrc, order)
    if waste_stock and redeal:
        k = _stock_moves(S, cfg, mv, k, 1, fe, free_cell)
    # reserve to tableau
    for r in range(cfg[R]):
        c = _top(S, cfg, nt + r)
        if c != 0:
            k = _place_targets(S, cfg, c, -1, mv, k, K_R2T, r, 1, 0, 0, fe)
    # worrying back
    if cfg[FPRES] and cfg[FREM]:
        for f in range(cfg[NF]):
            cnt = S[of + f]
            if cnt == 0 or (pdst == 2000 + f and (pflags & 2) == 0):
                continue
            c = found_top(S, cfg, f)
            if cfg[DOM] and _safe(S, cfg, f, cnt, c):
                continue
            k0 = k
            k = _place_targets(S, cfg, c, -1, mv, k, K_F2T, f, 1, 0, 0, fe)
            for x in range(k0, k):
                mv[x, 6] = 4  # from a foundation: it may go on to a cell next
    if waste_stock and not redeal:
        k = _stock_moves(S, cfg, mv, k, 1, fe, free_cell)
        k = _stock_moves(S, cfg, mv, k, 0, fe, free_cell)
    # into cells
    if free_cell >= 0:
        if waste_stock:
            k = _stock_moves(S, cfg, mv, k, 2, fe, free_cell)
        for r in range(cfg[R]):
            if _len(S, cfg, nt + r) > 0:
                k = _add(mv, k, K_R2C, r, free_cell, 1, 0, 0)
        for i in range(nt):
            # (a card just moved here goes on to a cell only when it came off a foundation:
            # there is no direct foundation-to-cell move)
            if _len(S, cfg, i) > 0 and (pdst != i or (pflags & 4) != 0):
                k = _add(mv, k, K_T2C, i, free_cell, 1, 0, 0)
    # deal the stock to every pile / to the hole
    if cfg[DTYPE] != 0 and _len(S, cfg, stock) > 0:
        k = _add(mv, k, K_DEAL, 0, 0, 1, 0, 0)
    return k
