"""The open-addressing transposition table of 128-bit keys (linear probing, at most 90 % full).

The table starts small and doubles (the caller rehashes) while it fits the memory budget.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .layout import D_FILL, D_STATUS, MEMORY


@njit(cache=True, inline="always")
def _tt_probe(tab, h1, h2):
    """Linear probe for the key (h1, h2) (h1 != 0): the slot holding it and True, or the empty
    slot where its probe ends and False."""
    mask = np.uint64(tab.shape[0] - 1)
    i = h1 & mask
    while True:
        v = tab[i, 0]
        if v == 0:
            return i, False
        if v == h1 and tab[i, 1] == h2:
            return i, True
        i = (i + np.uint64(1)) & mask


@njit(cache=True)
def tt_insert(tab, h1, h2, ctl):
    """Insert (h1, h2); return True when it was new. Sets MEMORY status when the table is full."""
    if h1 == 0:
        h1 = np.uint64(1)
    i, found = _tt_probe(tab, h1, h2)
    if found:
        return False
    if ctl[D_FILL] * 10 >= tab.shape[0] * 9:
        ctl[D_STATUS] = MEMORY
        return False
    tab[i, 0] = h1
    tab[i, 1] = h2
    ctl[D_FILL] += 1
    return True


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


@njit(cache=True)
def tt_contains(tab, h1, h2):
    """Whether (h1, h2) is in the table (a lookup that inserts nothing)."""
    if h1 == 0:
        h1 = np.uint64(1)
    return _tt_probe(tab, h1, h2)[1]
