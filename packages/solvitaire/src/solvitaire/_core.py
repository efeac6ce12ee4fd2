"""Compiled (numba) core: state encoding, move generation, move application and the DFS.

Everything compiled lives in this one module so that numba's on-disk cache (``cache=True``)
is invalidated whenever any of it changes.

A state is one ``int8`` vector. Layout (offsets stored in ``cfg``):
``[passes, hole top, foundation counts (NF), cells (C), pile lengths (NP), face-down counts (T),
pile data (NP x CAP)]``; piles are the T tableau piles, the R reserve piles, the stock and the
waste, bottom card first. A move is seven ``int16``: ``kind, a, b, n, steps, redeals, flags``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# cfg indices
T, R, C, NF, MR, BUILD, GPOL, GMODE, SPACES, FPRES, FREM, FCOMP, HPRES, HLOOP = range(14)
DTYPE, DCOUNT, REDEALS, RSTACK, BASE, DOM, CAP, NCARDS, OFF_F, OFF_C, OFF_L, OFF_D = range(14, 26)
OFF_DATA, SSIZE, NP, SYM, FDOWN, SUITSYM, GPLACE, RPRUNE, ORDER, DEADLOCK = range(26, 36)
NCFG = 36

# move kinds
K_T2F, K_T2T, K_T2C, K_C2T, K_C2F, K_R2T, K_R2F, K_F2T, K_W, K_DEAL = range(10)
K_T2H, K_C2H, K_R2H, K_SPIDER, K_R2C = range(10, 15)
SUIT_BITS = np.uint64(0x1111111111111111)  # the card codes of suit 0 (code = rank * 4 + suit)
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


@njit(cache=True, inline="always")
def sym_now(S, cfg):
    """Whether tableau piles are interchangeable now: always, except while a stock that is
    dealt to every pile in a fixed order still holds cards (then a pile's place matters)."""
    if cfg[SYM] == 1:
        return True
    return cfg[DTYPE] == 1 and S[cfg[OFF_L] + cfg[T] + cfg[R]] == 0


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
    mv[k, 6] = 0
    return k + 1


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


@njit(cache=True, inline="always")
def _rank_bits(lo, hi):
    """Bit set of every card code with a rank in ``lo..hi`` (empty when lo > hi)."""
    if lo > hi:
        return np.uint64(0)
    return ((np.uint64(1) << np.uint64(4 * hi + 4)) - np.uint64(1)) ^ (
        (np.uint64(1) << np.uint64(4 * lo)) - np.uint64(1)
    )


@njit(cache=True)
def deadlocked(S, cfg, forced=True):
    """True when the position provably cannot be won: a non-empty set D of tableau cards none
    of which can ever move first. (Used only where ``cfg[DEADLOCK]`` is set: one deck,
    foundations built up from the ace, no cells and no hole, and only kings (or nothing) may
    fill a space, so a card leaves its pile only to a foundation or onto a tableau card.)

    D starts as every non-king tableau card and loses each card that has a way out while
    every card of D stays where it is: a tableau card is *covered* when a card of D lies
    above it in its pile. A card keeps a way out when (1) it is not covered and no lower
    card of its suit that is still off the foundations is covered or in D (every one must
    go up before it), or
    (2) some card it may be built on is not covered (cards outside the tableau count as
    uncovered), or (3) the face-up card under it, which it would go along with as part of
    a built group, is out of D (a king at the bottom of a pile does not count: moving a
    whole pile to a space only swaps piles). What is left (the greatest such set) is
    stuck: the first of its cards to move would need a covered card exposed, a covered or
    stuck card on a foundation, or a carrier from D, i.e. another card of D to have moved
    before it. A stuck card never reaches its foundation, so the position is lost.

    With ``forced`` (the search uses it at the root only: it costs another pass per round),
    a card Y with a single way out, onto a card t (Y cannot go up, every other card it could
    go onto is covered and it has no carrier), *takes* t: Y must leave before the cards
    under it, can only go onto t, and can never leave t again while D stays put, so for the
    cards under Y, t counts as covered. (Klondike seed 22: Q♣ lies on Q♠, K♥, 9♣ and 6♠
    and can only go onto K♦, which Q♠ needs.)"""
    nt = cfg[T]
    mr = cfg[MR]
    od = cfg[OFF_D]
    of = cfg[OFF_F]
    one = np.uint64(1)
    # the tableau's cards: their pile and height, and per pile the cards below each height
    where = np.empty(64, np.int64)  # card code -> pile * 256 + height
    below = np.zeros((nt, cfg[CAP] + 1), np.uint64)  # below[j, i]: cards under height i
    dl = np.empty(64, np.int64)  # the cards of D
    nd = 0
    D = np.uint64(0)
    for j in range(nt):
        for i in range(_len(S, cfg, j)):
            c = _at(S, cfg, j, i)
            where[c] = j * 256 + i
            below[j, i + 1] = below[j, i] | (one << np.uint64(c))
            if (c >> 2) != mr:
                D |= one << np.uint64(c)
                dl[nd] = c
                nd += 1
    top = np.empty(nt, np.int64)  # height of the highest card of D in each pile
    taken = np.zeros(64, np.uint64)  # per card: cards that cards above it must go onto
    while nd > 0:
        for j in range(nt):
            top[j] = 0
        for x in range(nd):
            w = where[dl[x]]
            j = w >> 8
            if (w & 255) + 1 > top[j]:
                top[j] = (w & 255) + 1
        covered = np.uint64(0)  # tableau cards with a card of D above them
        for j in range(nt):
            if top[j] > 1:
                covered |= below[j, top[j] - 1]
        # a card Y with one way out only, onto a card t (it cannot go up, every other card
        # it could go onto is covered, and it has no carrier): Y must leave before any card
        # under it can, it can only go onto t and never leaves t again (while D stays put),
        # so for the cards under Y, t counts as covered (``taken``: per card, the cards the
        # cards above it must take)
        for j in range(nt if forced else 0):
            acc = np.uint64(0)
            for i in range(_len(S, cfg, j) - 1, -1, -1):
                c = _at(S, cfg, j, i)
                taken[c] = acc
                if i == 0 or (c >> 2) == mr:
                    continue
                h = _at(S, cfg, j, i - 1)
                if i - 1 >= S[od + j] and _builds(cfg[GPOL], c, h, 1, mr):
                    continue  # a carrier (h face up, in sequence)
                su = c & 3
                lower = _rank_bits(S[of + su] + 1, (c >> 2) - 1) & (SUIT_BITS << np.uint64(su))
                if (lower & (covered | D)) == 0:
                    continue  # it may go up
                tg = _onto_mask(c, cfg[BUILD], 1, mr) & ~covered
                if tg != 0 and (tg & (tg - one)) == 0:
                    acc |= tg
        keep = 0
        for x in range(nd):
            c = dl[x]
            bit = one << np.uint64(c)
            r = c >> 2
            su = c & 3
            # (1) the foundation: the lower cards of its suit still to go up
            lower = _rank_bits(S[of + su] + 1, r - 1) & (SUIT_BITS << np.uint64(su))
            out = (bit & covered) == 0 and (lower & (covered | D)) == 0
            # (2) a card to be built on that is not covered (nor taken by the card above)
            if not out:
                out = (_onto_mask(c, cfg[BUILD], 1, mr) & ~(covered | taken[c])) != 0
            # (3) a face-up carrier under it that is out of D
            if not out:
                w = where[c]
                j = w >> 8
                i = w & 255
                if i > 0 and i > S[od + j]:
                    h = _at(S, cfg, j, i - 1)
                    if _builds(cfg[GPOL], c, h, 1, mr) and not (i == 1 and (h >> 2) == mr):
                        out = ((D >> np.uint64(h)) & one) == 0
            if not out:
                dl[keep] = c
                keep += 1
        if keep == nd:
            return True
        nd = keep
        D = np.uint64(0)
        for x in range(nd):
            D |= one << np.uint64(dl[x])
    return False


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


@njit(cache=True, inline="always")
def _tops_and_space(S, cfg, nt):
    """The first ``nt`` piles' top cards as a bit set (bit = card code, < 64) and whether one
    of the piles is empty."""
    tops = np.uint64(0)
    space = False
    for j in range(nt):
        t = _top(S, cfg, j)
        if t == 0:
            space = True
        else:
            tops |= np.uint64(1) << np.uint64(t)
    return tops, space


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
                if space or (tops & _onto_mask(c, cfg[BUILD], base, mr)) != 0:
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
def _pile_less(S, cfg, a, b):
    """Whether tableau pile ``a`` comes before pile ``b``: fewer cards first, then by the
    cards bottom first (``ORDER`` 1) or top first (``ORDER`` 3), a total order on the piles'
    contents, so symmetric states order their piles alike."""
    na = _len(S, cfg, a)
    nb = _len(S, cfg, b)
    if na != nb:
        return na < nb
    ba = cfg[OFF_DATA] + a * cfg[CAP]
    bb = cfg[OFF_DATA] + b * cfg[CAP]
    top = cfg[ORDER] == 3  # ties broken by the cards top first (else bottom first)
    for y in range(na):
        x = na - 1 - y if top else y
        ca = S[ba + x]
        cb = S[bb + x]
        if ca != cb:
            return ca < cb
    return a < b


@njit(cache=True)
def pile_order(S, cfg, order):
    """Fill ``order[:T]`` with the tableau piles in the order their moves are tried: with
    ``ORDER`` set, shortest pile first (moves off short piles, which empty them, and onto
    short piles come first, as in the reference program's canonical pile order); otherwise
    the last pile first."""
    nt = cfg[T]
    if cfg[ORDER] == 0:
        for x in range(nt):
            order[x] = nt - 1 - x
        return
    for x in range(nt):  # insertion sort: T is at most a few dozen
        p = x
        y = x
        while y > 0 and _pile_less(S, cfg, p, order[y - 1]):
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
        for gg in range(ghi - glo + 1):
            # with ORDER set the largest group is tried first (a whole run onto a space)
            g = ghi - gg if cfg[ORDER] != 0 else glo + gg
            if gm == 2 and g > 1 and not (g == n and S[od + i] == 0):
                continue
            if gm == 3 and g > 1 and g != run:
                continue
            c = _at(S, cfg, i, n - g)
            pol = cfg[GPOL] if (g > 1 and cfg[GPLACE] == 1) else cfg[BUILD]
            if not space and (tops & _onto_mask(c, pol, base, mr)) == 0:
                continue  # no pile top takes c (and no space)
            rp = g == 1 and i == pdst and n > 1 and cfg[RPRUNE] == 1
            whole = g == n and S[od + i] == 0
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
    for i in range(nt):
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
    order = np.empty(nt, np.int64)
    pile_order(S, cfg, order)
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


# ---------------------------------------------------------------------------- search
# Compiled depth-first search with a 128-bit open-addressing transposition table.
#
# The state key is permutation-invariant over tableau piles (a sum of per-pile hashes), over
# cells and over unstacked reserve piles, so symmetric positions share one table entry. Each
# pile is hashed Zobrist-style (XOR of random words per (position, card)) in two independent
# 64-bit lanes; both lanes are stored per entry (no full-key check; the chance of a false
# "seen" among 10^8 states is about 10^16 / 2^128, i.e. negligible).
# The table starts small and doubles (the caller rehashes) while it fits the memory budget.
# The search is resumable: :func:`search_chunk` runs at most ``budget`` nodes and returns, so the
# caller can enforce wall-clock timeouts between chunks.

RUNNING, SOLVED, UNSOLVABLE, MEMORY, BUFFER, GROW = 0, 1, 2, 3, 4, 5
# ctl indices
D_DEPTH, D_STATUS, D_NODES, D_UNIQUE, D_DOM, D_MAXD, D_BACK, D_FILL, D_CANGROW, D_DEAD = range(10)
NCTL = 10
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


@njit(cache=True)
def tt_insert(tab, h1, h2, ctl):
    """Insert (h1, h2); return True when it was new. Sets MEMORY status when the table is full."""
    mask = np.uint64(tab.shape[0] - 1)
    if h1 == 0:
        h1 = np.uint64(1)
    i = h1 & mask
    while True:
        v = tab[i, 0]
        if v == 0:
            if ctl[D_FILL] * 10 >= tab.shape[0] * 9:
                ctl[D_STATUS] = MEMORY
                return False
            tab[i, 0] = h1
            tab[i, 1] = h2
            ctl[D_FILL] += 1
            return True
        if v == h1 and tab[i, 1] == h2:
            return False
        i = (i + np.uint64(1)) & mask


@njit(cache=True)
def tt_rehash(old, new):
    """Move every entry of ``old`` into the (empty, larger) table ``new``."""
    mask = np.uint64(new.shape[0] - 1)
    for x in range(old.shape[0]):
        h1 = old[x, 0]
        if h1 == 0:
            continue
        i = h1 & mask
        while new[i, 0] != 0:
            i = (i + np.uint64(1)) & mask
        new[i, 0] = h1
        new[i, 1] = old[x, 1]


@njit(cache=True, inline="always")
def _onto_tableau(mv, i):
    """Whether move ``i`` puts one or more cards on a tableau pile."""
    kind = mv[i, 0]
    if kind == K_T2T or kind == K_C2T or kind == K_R2T:  # noqa: SIM109
        return True
    if kind == K_F2T or kind == K_DEAL:  # noqa: SIM109
        return True
    return kind == K_W and mv[i, 3] == 1


@njit(cache=True)
def _moved_cards_free(S, cfg, mv, i):
    """After move ``i`` put cards on a tableau pile of position S: whether every card it
    moved is a king or may be built on a pile top or a foundation card. A position that was
    not deadlocked can only become deadlocked through a move whose stuck set contains a moved
    card (any other stuck set was stuck before the move; the moved cards sit on a card they
    are built on, so they take no card away from the cards under them), and a card that may
    go onto an uncovered card is never stuck: then the deadlock test can be skipped."""
    kind = mv[i, 0]
    if kind == K_DEAL or cfg[GPOL] != cfg[BUILD]:
        return False
    j = mv[i, 2]
    n = mv[i, 3] if kind == K_T2T else 1
    mr = cfg[MR]
    free, _space = _tops_and_space(S, cfg, cfg[T])
    of = cfg[OFF_F]
    for su in range(4):
        free |= _rank_bits(1, S[of + su]) & (SUIT_BITS << np.uint64(su))
    ln = _len(S, cfg, j)
    for x in range(ln - n, ln):
        c = _at(S, cfg, j, x)
        if (c >> 2) != mr and (_onto_mask(c, cfg[BUILD], 1, mr) & free) == 0:
            return False
    return True


@njit(cache=True)
def expand(states, d, cfg, mv, fs, fe, fn, path, tab, Z, ctl):
    """Open node ``d`` (its state is ``states[d]``). Returns False if it is a transposition."""
    S = states[d]
    start = fe[d - 1] if d > 0 else 0
    # the deadlock test runs only where a deadlock can have appeared: at the root and after a
    # move that put cards on the tableau (moves that only take cards off the tableau or turn
    # cards face up never make a position harder), once per new state
    test = cfg[DEADLOCK] != 0 and (
        d == 0 or (_onto_tableau(mv, path[d]) and not _moved_cards_free(S, cfg, mv, path[d]))
    )
    k = dominance(S, cfg, mv, start)
    if k == start:
        h1, h2 = state_hash2(S, cfg, Z)
        if not tt_insert(tab, h1, h2, ctl):
            return False
        ctl[D_UNIQUE] += 1
        if test and deadlocked(S, cfg, d == 0):
            k = start  # no children: the position is lost
            ctl[D_DEAD] += 1
        elif d > 0:
            pm = path[d]
            psrc = mv[pm, 1] if mv[pm, 0] == K_T2T else -1
            k = gen_moves(S, cfg, mv, start, dst_code(mv, pm), mv[pm, 6], psrc)
        else:
            k = gen_moves(S, cfg, mv, start, -1, 0, -1)
    elif test and deadlocked(S, cfg, d == 0):
        k = start
        ctl[D_DEAD] += 1
    else:
        ctl[D_DOM] += 1
    fs[d] = start
    fe[d] = k
    fn[d] = start
    return True


@njit(cache=True)
def search_chunk(states, cfg, mv, fs, fe, fn, path, tab, Z, ctl, budget, max_states):
    """Run the DFS for at most ``budget`` nodes; returns the status (RUNNING when unfinished,
    BUFFER when the stacks must grow, GROW when the table should double)."""
    maxd = states.shape[0] - 1
    while budget > 0:
        if ctl[D_STATUS] != RUNNING:
            return ctl[D_STATUS]
        if ctl[D_CANGROW] != 0 and ctl[D_FILL] * 2 >= tab.shape[0]:
            return GROW
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
            if expand(states, d + 1, cfg, mv, fs, fe, fn, path, tab, Z, ctl):
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
