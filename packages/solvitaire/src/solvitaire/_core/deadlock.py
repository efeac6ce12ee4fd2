"""The deadlock test: a proof that a position is lost, and when the search needs to run it."""

from __future__ import annotations

import numpy as np
from numba import njit

from .building import _builds, _onto_mask, _rank_bits
from .layout import (
    BUILD,
    CAP,
    GPOL,
    K_C2T,
    K_DEAL,
    K_F2T,
    K_R2T,
    K_T2T,
    K_W,
    MR,
    OFF_D,
    OFF_F,
    SUIT_BITS,
    T,
    _at,
    _len,
    _tops_and_space,
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
