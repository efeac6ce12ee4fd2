"""The arrangement relaxation of Klondike-like games: a search that forgets where the face-up
tableau cards lie, used to prove deals lost (and, its won games made concrete by
:func:`solvitaire._arrange.concretize`, to solve them).

Games: one deck, four foundations built up by suit from the ace (whose cards may come back:
the safe-card rule below needs it), tableau piles built down in alternating colours, spaces
filled only by the top rank, a waste stock dealt ``k`` cards at a time with unlimited
redeals, no cells, reserve or hole, and every pile dealt with at most one card face up
(Klondike and its draw-k relatives).

Each tableau pile is split into its *structure* (the cards it was dealt, face down, with the
lowest face-up dealt card, its *surface*, on top) and the cards *placed* there since (from the
stock, from a foundation, or a surface that moved away). An abstract state is only the
foundation heights, the structure length of each pile and the stock (cards left, waste size),
so the face-up cards of the tableau are a set, and a move is allowed when *some* arrangement of
that set in valid runs allows it. An arrangement exists exactly when, for every card type (a
rank and a colour: two cards), the placed cards one rank below of the other colour number at
most the face-up cards of the type (each card holds one card), and the placed top-rank cards at
most the empty piles; every type with more face-up cards than such children has an uncovered
card, on which a card can go, and which can go to a foundation.

Every real move is then an abstract move or leaves the abstract state as it is (a run moved off
a placed card): stock and foundation moves are the same, and a run moved off a surface card
moves the surface, which turns the card below it. So a real winning line maps to an abstract
one, and **a deal whose abstract game is lost is lost**. The converse need not hold (abstract
wins answer only once made concrete and replayed). Moving a top-rank surface card that lies
alone in its pile is left out: it leads to a state with the same moves as the one it leaves.
A safe card that can go to its foundation (``_safe``) goes there as the only move.

Cards are bits ``(rank - 1) * 4 + suit`` of an int64 (suit C=0 H=1 S=2 D=3, colour
``suit & 1``, so the two cards of a type are bits ``b`` and ``b + 2``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .keys import _mix

#: ``arrangement_chunk`` answers: the abstract game is lost (so is the deal) or won.
A_LOST, A_WON = 0, 1

_KM = 1024  # a move is kind * _KM + arg (a stock arg is position * 32 + waste size < 1024)
#: Moves per node at most: 4 to the foundations, 4 back, one reveal per pile (16 piles at
#: most) and two per stock card (26 at most).
MAX_MOVES = 8 + 16 + 2 * 26


@njit(cache=True, inline="always")
def _n_type(x, r, col):
    """How many of the two cards of rank ``r`` (1-based) and colour ``col`` are in the set ``x``."""
    b = (r - 1) * 4 + col
    return ((x >> b) & 1) + ((x >> (b + 2)) & 1)


@njit(cache=True, inline="always")
def _room(vis, placed, free_space, r, col, mr):
    """Whether a card of rank ``r`` and colour ``col`` can be put on the tableau: an uncovered
    face-up card one rank up of the other colour, or for the top rank an empty pile."""
    if r == mr:
        return free_space >= 1
    return _n_type(vis, r + 1, 1 - col) - _n_type(placed, r, col) >= 1


@njit(cache=True, inline="always")
def _free(vis, placed, r, s):
    """Whether the card of rank ``r`` and suit ``s`` is face up with a card of its type
    uncovered (then some arrangement leaves it uncovered: it can go to its foundation)."""
    if not (vis >> ((r - 1) * 4 + s)) & 1:
        return False
    kids = _n_type(placed, r - 1, 1 - (s & 1)) if r > 1 else 0
    return _n_type(vis, r, s & 1) - kids >= 1


@njit(cache=True, inline="always")
def _safe(found, r, s):
    """A card of rank ``r`` and suit ``s`` that can go to its foundation is safe there: an ace
    or a two, or both foundations of the other colour at ``r - 1`` or more and the other suit
    of its colour at ``r - 2`` or more (the safe-move rule of games whose foundation cards may
    come back, Solvitaire paper appendix B.1): no card needs it on the tableau."""
    if r <= 2:
        return True
    o = 1 - (s & 1)
    return found[o] >= r - 1 and found[o + 2] >= r - 1 and found[s ^ 2] >= r - 2


@njit(cache=True, inline="always")
def _key(found, cnt, radix, alive, p, m, sbits):
    """The exact int64 key of an abstract state (foundations, structure lengths, stock)."""
    if p == m:
        p = 0  # an empty stock and a fresh pass reach the same cards
    key = np.int64(0)
    for s in range(4):
        key = key * 16 + found[s]
    for i in range(cnt.shape[0]):
        key = key * radix[i] + cnt[i]
    return (key << (sbits + 5)) | (alive << 5) | p


@njit(cache=True, inline="always")
def _reach_one(q, rem, seen, pos_out, out):
    """Add waste index ``q`` to ``pos_out`` unless it is there (``seen``: a bit mask)."""
    if (seen >> q) & 1:
        return seen, out
    pos_out[out, 0] = rem[q]
    pos_out[out, 1] = q
    return seen | (np.int64(1) << q), out + 1


@njit(cache=True)
def _reachable(alive, p, n, k, pos_out, rem):
    """The stock positions whose card can be played after draws and redeals from (alive, p):
    writes them to ``pos_out`` (each with the waste size it leaves in ``pos_out[:, 1]``) and
    returns how many (``p``: cards in the waste; positions index the dealt stock order;
    ``rem``: a buffer of n + 1)."""
    m = 0
    for q in range(n):
        if (alive >> q) & 1:
            rem[m] = q
            m += 1
    seen = np.int64(0)
    out = 0
    if p >= 1:
        seen, out = _reach_one(p - 1, rem, seen, pos_out, out)
    j = p
    while j < m:  # draws of this pass
        j = min(j + k, m)
        seen, out = _reach_one(j - 1, rem, seen, pos_out, out)
    j = 0
    while j < m:  # draws after a redeal
        j = min(j + k, m)
        seen, out = _reach_one(j - 1, rem, seen, pos_out, out)
    return out


@njit(cache=True)
def _gen(found, cnt, alive, p, sb, hm, fm, seqb, n, k, mr, removable, allm, moves, pos, rem):
    """Write the abstract moves of a state to ``moves`` (``kind * _KM + arg``; kinds 0 pile to
    foundation (arg: suit), 1 reveal (arg: pile), 2 stock to foundation, 3 stock to tableau
    (arg: stock position * 32 + waste size left), 4 foundation to tableau (arg: suit)); return
    their number, or -1 when the state is won."""
    won = True
    fmask = np.int64(0)
    for s in range(4):
        fmask |= fm[s, found[s]]
        if found[s] < mr:
            won = False
    if won:
        return -1
    hid = np.int64(0)
    surf = np.int64(0)
    empties = 0
    for i in range(cnt.shape[0]):
        c = cnt[i]
        if c == 0:
            empties += 1
        else:
            hid |= hm[i, c]
            surf |= np.int64(1) << sb[i, c - 1]
    deck = np.int64(0)
    for q in range(n):
        if (alive >> q) & 1:
            deck |= np.int64(1) << seqb[q]
    vis = allm & ~(fmask | hid | deck)
    placed = vis & ~surf
    free_space = empties - _n_type(placed, mr, 0) - _n_type(placed, mr, 1)
    nm = 0
    # a safe card to its foundation is the only move (see ``_safe``)
    for s in range(4):
        r = found[s] + 1
        if r <= mr and _safe(found, r, s) and _free(vis, placed, r, s):
            moves[0] = s
            return 1
    # (1) a tableau card to its foundation: face up, and one of its type uncovered
    for s in range(4):
        r = found[s] + 1
        if r <= mr and _free(vis, placed, r, s):
            moves[nm] = s
            nm += 1
    # (2) a surface card (with whatever lies on it) onto an uncovered card: the card below turns
    for i in range(cnt.shape[0]):
        c = cnt[i]
        if c == 0:
            continue
        b = sb[i, c - 1]
        r = b // 4 + 1
        if (r < mr or c > 1) and _room(vis, placed, free_space, r, b & 1, mr):
            moves[nm] = _KM + i
            nm += 1
    # (3), (4) a stock card to its foundation or onto the tableau
    npos = _reachable(alive, p, n, k, pos, rem)
    for t in range(npos):
        b = seqb[pos[t, 0]]
        r = b // 4 + 1
        s = b % 4
        arg = pos[t, 0] * 32 + pos[t, 1]
        if found[s] + 1 == r:
            moves[nm] = 2 * _KM + arg
            nm += 1
        if _room(vis, placed, free_space, r, s & 1, mr):
            moves[nm] = 3 * _KM + arg
            nm += 1
    # (5) a foundation's top card back onto the tableau
    if removable:
        for s in range(4):
            r = found[s]
            if r > 0 and _room(vis, placed, free_space, r, s & 1, mr):
                moves[nm] = 4 * _KM + s
                nm += 1
    return nm


@njit(cache=True)
def _apply(mv, found, cnt, alive, p, sb, seqb):
    """Apply abstract move ``mv`` in place to (found, cnt); return the new (alive, p)."""
    kind = mv // _KM
    arg = mv % _KM
    if kind == 0:
        r = found[arg] + 1
        b = (r - 1) * 4 + arg
        found[arg] = r
        for i in range(cnt.shape[0]):
            if cnt[i] > 0 and sb[i, cnt[i] - 1] == b:
                cnt[i] -= 1
                break
    elif kind == 1:
        cnt[arg] -= 1
    elif kind == 4:
        found[arg] -= 1
    else:
        q = arg // 32
        alive = alive & ~(np.int64(1) << q)
        p = arg % 32
        if kind == 2:
            found[seqb[q] % 4] += 1
    return alive, p


# ctl entries of a resumable search (see ``arrangement_chunk``)
X_DEPTH, X_STATES, X_FILL, X_STATUS = 0, 1, 2, 3
# status: A_LOST, A_WON (answers), A_RUN (budget spent), A_GROW (table half full), A_DEEP
A_RUN, A_GROW, A_DEEP = 3, 4, 5
# par entries (the rules and the deal's constants)
P_N, P_K, P_MR, P_REM, P_ALL = 0, 1, 2, 3, 4


@njit(cache=True)
def arrangement_tables(sb, mr):
    """(fm, hm): ``fm[s, h]`` the cards of suit ``s`` on a foundation of height ``h``;
    ``hm[i, c]`` the face-down cards of pile ``i`` when its structure has ``c`` cards."""
    fm = np.zeros((4, 16), np.int64)
    for s in range(4):
        for h in range(1, mr + 1):
            fm[s, h] = fm[s, h - 1] | (np.int64(1) << ((h - 1) * 4 + s))
    T, L = sb.shape
    hm = np.zeros((T, L + 1), np.int64)
    for i in range(T):
        for c in range(2, L + 1):
            hm[i, c] = hm[i, c - 1] | (np.int64(1) << sb[i, c - 2])
    return fm, hm


@njit(cache=True)
def arrangement_chunk(sb, hm, fm, radix, seqb, par, st_found, st_cnt, st_ap, st_moves, st_ni,
                      table, ctl, budget):  # fmt: skip
    """Run the abstract game's exhaustive DFS (module docstring) for up to ``budget`` new
    states, resuming where ``ctl`` says (``X_DEPTH`` -1: not started; the caller puts the
    start state in row 0 of ``st_found`` (int64[D, 4] foundation heights by suit), ``st_cnt``
    (int64[D, T] structure lengths) and ``st_ap`` (int64[D, 2]: stock cards left as a bit
    mask over the dealt stock order, cards in the waste)). ``sb``: int64[T, L] structure card
    bits of each pile, bottom first; ``hm``, ``fm`` from :func:`arrangement_tables`;
    ``radix``: int64[T] (max structure length + 1); ``seqb``: int64[n] stock card bits in play
    order (waste bottom to top, then the stock in draw order); ``par``: int64[5] (``P_*``);
    ``st_moves``/``st_ni``: int64[D, MAX_MOVES] / int64[D, 2] move lists; ``table``: int64 open
    addressing (0 empty). Returns the status (also in ``ctl[X_STATUS]``): ``A_LOST`` (the
    abstract game is lost, so the deal is), ``A_WON``, ``A_RUN`` (budget spent), ``A_GROW``
    (the table is 3/4 full: double it with :func:`arrangement_grow`, then call again) or
    ``A_DEEP`` (give the stacks more rows, then call again)."""
    n, k, mr, removable, allm = par[P_N], par[P_K], par[P_MR], par[P_REM], par[P_ALL]
    T = st_cnt.shape[1]
    found = np.zeros(4, np.int64)
    cnt = np.zeros(T, np.int64)
    pos = np.empty((2 * n + 2, 2), np.int64)
    rem = np.empty(n + 1, np.int64)
    d = ctl[X_DEPTH]
    if d < 0:
        nm = _gen(st_found[0], st_cnt[0], st_ap[0, 0], st_ap[0, 1], sb, hm, fm, seqb, n, k,
                  mr, removable, allm, st_moves[0], pos, rem)  # fmt: skip
        ctl[X_STATES] = 1
        if nm < 0:
            ctl[X_DEPTH] = 0
            ctl[X_STATUS] = A_WON
            return A_WON
        st_ni[0, 0] = nm
        st_ni[0, 1] = 0
        d = 0
    mask = table.shape[0] - 1
    limit = ctl[X_STATES] + budget
    status = A_LOST
    while d >= 0:
        if st_ni[d, 1] >= st_ni[d, 0]:
            d -= 1
            continue
        if d + 1 >= st_found.shape[0]:
            status = A_DEEP
            break
        if ctl[X_FILL] * 4 >= table.shape[0] * 3:
            status = A_GROW
            break
        if ctl[X_STATES] >= limit:
            status = A_RUN
            break
        mv = st_moves[d, st_ni[d, 1]]
        st_ni[d, 1] += 1
        found[:] = st_found[d]
        cnt[:] = st_cnt[d]
        alive, p = _apply(mv, found, cnt, st_ap[d, 0], st_ap[d, 1], sb, seqb)
        key = _key(found, cnt, radix, alive, p, _popcount(alive), n) + 1
        slot = _slot(key, mask)
        seen = False
        while table[slot] != 0:
            if table[slot] == key:
                seen = True
                break
            slot = (slot + 1) & mask
        if seen:
            continue
        table[slot] = key
        ctl[X_FILL] += 1
        ctl[X_STATES] += 1
        e = d + 1
        nm = _gen(found, cnt, alive, p, sb, hm, fm, seqb, n, k, mr, removable, allm,
                  st_moves[e], pos, rem)  # fmt: skip
        if nm < 0:  # (the path to the won state stays in rows 0..e)
            status = A_WON
            st_found[e] = found
            st_cnt[e] = cnt
            st_ap[e, 0] = alive
            st_ap[e, 1] = p
            d = e
            break
        st_found[e] = found
        st_cnt[e] = cnt
        st_ap[e, 0] = alive
        st_ap[e, 1] = p
        st_ni[e, 0] = nm
        st_ni[e, 1] = 0
        d = e
    ctl[X_DEPTH] = d
    ctl[X_STATUS] = status
    return status


@njit(cache=True, inline="always")
def _slot(key, mask):
    """The table slot where ``key``'s probe starts (``keys._mix``, the core's 64-bit mixer)."""
    return np.int64(_mix(np.uint64(key)) >> np.uint64(1)) & mask


@njit(cache=True, inline="always")
def _popcount(x):
    c = 0
    while x:
        x &= x - 1
        c += 1
    return c


@njit(cache=True)
def arrangement_grow(table):
    """``table`` rehashed into one twice as large."""
    new = np.zeros(table.shape[0] * 2, np.int64)
    mask = new.shape[0] - 1
    for x in range(table.shape[0]):
        key = table[x]
        if key == 0:
            continue
        slot = _slot(key, mask)
        while new[slot] != 0:
            slot = (slot + 1) & mask
        new[slot] = key
    return new
