"""State, move and control-vector encodings of the compiled search, and the basic pile access.

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
DCAP = 36  # > 0: a depth-limited search (no move below this depth; see dfs.search_chunk)
SDOM = 37  # 1: stock dominance of draw-k, unlimited-redeal stocks (see keys.stock_dominated)
# the row games (see rows.py): FAMILY 0 = piles (everything else), 1 = Accordion, 2 = Gaps;
# Accordion: moves onto the pile d to the left (bit d of ALEFT) or right (ARIGHT), when the
# top cards match by one of the policies in APOL (bits: same suit, same rank, red-black, any);
# Gaps: GROWS rows of GCOLS cells, built by BUILD towards GDIR (1 left, 2 right, 3 both),
# GFIXED: row r is built in suit r
FAMILY, ALEFT, ARIGHT, APOL, GROWS, GCOLS, GDIR, GFIXED = range(38, 46)
# 1: a stock card goes onto the tableau only when a card is put onto it next (see
# dfs.expand; it holds where every stock card can always be played: deal count 1 with
# unlimited redeals, checked at run time against DCOUNT, so it also serves the draw-one
# relaxation of a draw-k game)
WPAIR = 46
NCFG = 47

# move kinds
K_T2F, K_T2T, K_T2C, K_C2T, K_C2F, K_R2T, K_R2F, K_F2T, K_W, K_DEAL = range(10)
K_T2H, K_C2H, K_R2H, K_SPIDER, K_R2C = range(10, 15)
K_ACC, K_GAP = 15, 16  # a pile onto another (Accordion); a card into a gap (Gaps)
SUIT_BITS = np.uint64(0x1111111111111111)  # the card codes of suit 0 (code = rank * 4 + suit)
MAX_MOVES_NODE = 4096

# search status codes and the indices of the control vector ``ctl`` shared by the DFS steps
RUNNING, SOLVED, UNSOLVABLE, MEMORY, BUFFER, GROW = 0, 1, 2, 3, 4, 5
D_DEPTH, D_STATUS, D_NODES, D_UNIQUE, D_DOM, D_MAXD, D_BACK, D_FILL, D_CANGROW, D_DEAD = range(10)
D_CUT = 10  # nodes a depth-limited search did not expand for its depth limit
D_SDOM = 11  # new states dropped because a state with the same cards and a smaller waste was seen
NCTL = 12


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
def sym_now(S, cfg):
    """Whether tableau piles are interchangeable now: always, except while a stock that is
    dealt to every pile in a fixed order still holds cards (then a pile's place matters)."""
    if cfg[SYM] == 1:
        return True
    if cfg[ORDER] == 4:  # the reference program's search: no pile symmetry in these games
        return False
    return cfg[DTYPE] == 1 and S[cfg[OFF_L] + cfg[T] + cfg[R]] == 0


@njit(cache=True)
def _first_empty(S, cfg):
    for j in range(cfg[T]):
        if _len(S, cfg, j) == 0:
            return j
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
