"""The open-addressing transposition table of 128-bit keys (linear probing, at most 90 % full).

The table starts small and doubles (the caller rehashes) while it fits the memory budget.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .layout import D_FILL, D_STATUS, MEMORY


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


@njit(cache=True)
def tt_contains(tab, h1, h2):
    """Whether (h1, h2) is in the table (a lookup that inserts nothing)."""
    mask = np.uint64(tab.shape[0] - 1)
    if h1 == 0:
        h1 = np.uint64(1)
    i = h1 & mask
    while True:
        v = tab[i, 0]
        if v == 0:
            return False
        if v == h1 and tab[i, 1] == h2:
            return True
        i = (i + np.uint64(1)) & mask
