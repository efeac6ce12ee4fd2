"""The compiled depth-first search: node expansion and a resumable search loop.

:func:`search_chunk` runs at most ``budget`` nodes and returns, so the caller can enforce
wall-clock timeouts between chunks and grow the stacks or the table.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .apply import apply_move
from .deadlock import _moved_cards_free, _onto_tableau, deadlocked
from .dominance import dominance
from .keys import _join, _mix, key_parts, stock_dominated
from .layout import (
    BUFFER,
    D_BACK,
    D_CANGROW,
    D_CUT,
    D_DEAD,
    D_DEPTH,
    D_DOM,
    D_FILL,
    D_MAXD,
    D_NODES,
    D_SDOM,
    D_STATUS,
    D_UNIQUE,
    DCAP,
    DCOUNT,
    DEADLOCK,
    FAMILY,
    GROW,
    K_T2T,
    K_W,
    MAX_MOVES_NODE,
    RUNNING,
    SOLVED,
    UNSOLVABLE,
    WPAIR,
    _at,
    _len,
    won,
)
from .movegen import dst_code, gen_moves
from .rows import rows_apply, rows_expand, rows_won
from .table import tt_insert


@njit(cache=True, inline="always")
def _needs_test(S, cfg, mv, path, d):
    """Whether node ``d`` (state S) gets the deadlock test (see :func:`expand`)."""
    if cfg[DEADLOCK] == 0:
        return False
    if d == 0:
        return True
    return _onto_tableau(mv, path[d]) and not _moved_cards_free(S, cfg, mv, path[d])


@njit(cache=True)
def _pair_node(S, d, cfg, mv, fs, fe, fn, start, j, tab, Z, ctl):
    """Node ``d`` after a stock card c went onto tableau pile ``j`` (``cfg[WPAIR]``, deal
    count 1, unlimited redeals): its moves are those that put a card onto c.

    Every stock card can be played at any time, from any waste position (with one card a
    deal and unlimited redeals), so a card played from the stock to the tableau only matters
    once a card is put onto it. In any solution, move c's arrival to just before the first
    move onto it, straight to the place c has then (the moves of c alone before that are
    dropped; a group moved with c under it moves without c, which the same group rules
    allow); if nothing ever goes onto c, c goes up from the stock instead when it went up from
    the tableau. The other moves stay legal (c covered nothing they needed) and the solution
    gets no longer, so a solution exists in which every stock card played to the tableau is
    covered at once. This node therefore takes no dominance move (those follow the card put
    onto c) and keeps only the moves onto ``j``; without one it is a dead end. Its moves
    depend on the position and on the cards of pile ``j`` alone (the piles are keyed as a
    multiset, and two decks may top two piles with the same card), so it is keyed by both,
    apart from the plain position (a later arrival at that position by another move gets
    every move): returns False when this (position, pile) was seen."""
    r1, r2, a, b, m = key_parts(S, cfg, Z)
    h1, h2 = _join(r1, r2, a, b, m)
    salt = np.uint64(0xA24BAED4963EE407)
    for i in range(_len(S, cfg, j)):
        salt = _mix(salt + np.uint64(_at(S, cfg, j, i) + 1))
    if not tt_insert(tab, _mix(h1 ^ salt), _mix(h2 + salt), ctl):
        return False
    k = gen_moves(S, cfg, mv, start, j, 0, -1)  # (a stock move carries no flags)
    kk = start
    for x in range(start, k):
        if dst_code(mv, x) == j:
            if kk != x:
                mv[kk, :] = mv[x, :]
            kk += 1
    fs[d] = start
    fe[d] = kk
    fn[d] = start
    return True


@njit(cache=True)
def expand(states, d, cfg, mv, fs, fe, fn, path, tab, Z, ctl):
    """Open node ``d`` (its state is ``states[d]``). Returns False if it is a transposition."""
    S = states[d]
    start = fe[d - 1] if d > 0 else 0
    if d > 0 and cfg[WPAIR] == 1 and cfg[DCOUNT] == 1:
        pm = path[d]
        if mv[pm, 0] == K_W and mv[pm, 3] == 1:
            return _pair_node(S, d, cfg, mv, fs, fe, fn, start, mv[pm, 2], tab, Z, ctl)
    # the deadlock test runs only where a deadlock can have appeared: at the root and after a
    # move that put cards on the tableau (moves that only take cards off the tableau or turn
    # cards face up never make a position harder), once per new state; whether it is needed
    # is worked out only for states that are new or take a dominance move (not for
    # transpositions, most of the nodes)
    # a state that takes a dominance move is keyed too: its one child does not depend on the
    # path, so a second arrival stops here instead of replaying the forced moves after it
    r1, r2, a, b, m = key_parts(S, cfg, Z)
    h1, h2 = _join(r1, r2, a, b, m)
    if not tt_insert(tab, h1, h2, ctl):
        return False
    # (looked for only now: most nodes are transpositions)
    k = dominance(S, cfg, mv, start)  # (writes at mv[start:], above the path's moves)
    if k == start:
        if stock_dominated(S, cfg, tab, r1, r2, a, b, m):
            ctl[D_SDOM] += 1  # a state at least as good was searched: like a transposition
            return False
        ctl[D_UNIQUE] += 1
        if _needs_test(S, cfg, mv, path, d) and deadlocked(S, cfg, d == 0):
            k = start  # no children: the position is lost
            ctl[D_DEAD] += 1
        elif d > 0:
            pm = path[d]
            psrc = mv[pm, 1] if mv[pm, 0] == K_T2T else -1
            k = gen_moves(S, cfg, mv, start, dst_code(mv, pm), mv[pm, 6], psrc)
        else:
            k = gen_moves(S, cfg, mv, start, -1, 0, -1)
    elif _needs_test(S, cfg, mv, path, d) and deadlocked(S, cfg, d == 0):
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
    BUFFER when the stacks must grow, GROW when the table should double). The row games
    (``cfg[FAMILY] != 0``, Accordion and Gaps) use the states and moves of :mod:`.rows`."""
    maxd = states.shape[0] - 1
    rows = cfg[FAMILY] != 0
    while budget > 0:
        if ctl[D_STATUS] != RUNNING:
            return ctl[D_STATUS]
        if ctl[D_CANGROW] != 0 and ctl[D_FILL] * 2 >= tab.shape[0]:
            return GROW
        d = ctl[D_DEPTH]
        if fn[d] < fe[d]:
            if cfg[DCAP] > 0 and d >= cfg[DCAP]:
                # a depth-limited search goes no deeper: the node counts as a dead end, so an
                # exhausted search that cut a node proves nothing (see _driver)
                fn[d] = fe[d]
                ctl[D_CUT] += 1
                continue
            if d + 1 >= maxd or fe[d] + MAX_MOVES_NODE > mv.shape[0]:
                return BUFFER  # the caller grows the stacks and calls again
            mi = fn[d]
            fn[d] = mi + 1
            states[d + 1, :] = states[d, :]
            if rows:
                rows_apply(states[d + 1], cfg, mv, mi)
            else:
                apply_move(states[d + 1], cfg, mv, mi)
            path[d + 1] = mi
            ctl[D_NODES] += 1
            budget -= 1
            if rows_won(states[d + 1], cfg) if rows else won(states[d + 1], cfg):
                ctl[D_DEPTH] = d + 1
                ctl[D_STATUS] = SOLVED
                return SOLVED
            if max_states > 0 and ctl[D_NODES] >= max_states:
                return RUNNING
            if (
                rows_expand(states, d + 1, cfg, mv, fs, fe, fn, path, tab, Z, ctl)
                if rows
                else expand(states, d + 1, cfg, mv, fs, fe, fn, path, tab, Z, ctl)
            ):
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
