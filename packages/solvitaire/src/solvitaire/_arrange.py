"""The arrangement relaxation (``tableau piles.arrangement relaxation``): the rules it fits, its
inputs for the compiled search (:mod:`._core.arrange`) and a resumable search object that the
driver runs beside the exact searches (only its proof that a deal is lost answers)."""

from __future__ import annotations

import time

import numpy as np

from . import _core as cs
from ._core import arrange as ca
from ._deal import Deal
from ._engine import GameState
from ._rules import Rules

__all__ = ["ArrangementSearch", "arrangement_search"]


def _inputs(rules: Rules, d: Deal) -> tuple | None:
    """The compiled search's inputs for a deal (see ``_core.arrange.arrangement_chunk``), or
    None when the position does not fit (a pile with more than one face-up card, or a key
    longer than 63 bits)."""
    gs = GameState(d, rules)
    T = len(gs.tab)
    L = max((len(p) for p in gs.tab), default=1) or 1
    sb = np.zeros((T, L), np.int64)
    cnt = np.zeros(T, np.int64)
    for i, p in enumerate(gs.tab):
        if len(p) - gs.down[i] > 1:
            return None
        for j, c in enumerate(p):
            sb[i, j] = c - 4  # card bit (rank - 1) * 4 + suit
        cnt[i] = len(p)
    radix = cnt + 1
    seq = list(gs.waste) + gs.stock[::-1]
    bits = 16 + int(np.ceil(np.log2(float(np.prod(radix))))) + len(seq) + 5
    if bits > 63 or len(seq) > 26:
        return None
    seqb = np.array([c - 4 for c in seq], np.int64)
    found = np.zeros(4, np.int64)
    for i, h in enumerate(gs.found):
        found[i % 4] = h
    mr = rules.max_rank
    allm = (1 << (4 * mr)) - 1
    k = rules.data["stock"]["deal count"]
    removable = int(rules.data["foundations"]["removable"])
    par = np.array([len(seq), k, mr, removable, allm], np.int64)
    fm, hm = ca.arrangement_tables(sb, mr)
    start = (found, cnt, (1 << len(seq)) - 1, len(gs.waste))
    return sb, hm, fm, radix, seqb, par, start


class ArrangementSearch:
    """The arrangement relaxation of one deal as a resumable search for the driver (the
    interface of :class:`._driver.Search`): a relaxation (its lost game proves the deal lost,
    its won game only ends it) whose node count is its abstract states."""

    decisive = False
    relaxation = True
    label = "arrangement"

    def __init__(self, inputs: tuple, cfg: np.ndarray, memory_limit: int) -> None:
        self.sb, self.hm, self.fm, self.radix, self.seqb, self.par, start = inputs
        self.cfg = cfg.copy()
        self.cfg[cs.DCAP] = 0
        self.memory_limit = memory_limit
        self.max_slots = 0  # (set by the driver; this search reads memory_limit)
        rows, T = 64, self.sb.shape[0]
        self.st_found = np.zeros((rows, 4), np.int64)
        self.st_cnt = np.zeros((rows, T), np.int64)
        self.st_ap = np.zeros((rows, 2), np.int64)
        self.st_moves = np.zeros((rows, 64), np.int64)
        self.st_ni = np.zeros((rows, 2), np.int64)
        found, cnt, alive, p = start
        self.st_found[0], self.st_cnt[0], self.st_ap[0] = found, cnt, (alive, p)
        self.table = np.zeros(1 << 12, np.int64)
        self.xctl = np.array([-1, 0, 0, ca.A_RUN], np.int64)
        self.ctl = np.zeros(cs.NCTL, np.int64)
        self.status = cs.RUNNING
        self.budget = 256  # states per chunk (most deals need a few hundred)

    @property
    def nodes(self) -> int:
        return int(self.xctl[ca.X_STATES])

    @property
    def tab(self) -> np.ndarray:
        """The transposition table (the driver reads its size)."""
        return self.table

    @property
    def answers_no(self) -> bool:
        return self.status == cs.UNSOLVABLE

    @property
    def answers_yes(self) -> bool:
        return False

    @property
    def deepen(self) -> bool:
        return False

    def release(self) -> None:
        self.table = np.zeros(1, np.int64)
        self.st_found = self.st_cnt = self.st_ap = self.st_moves = self.st_ni = self.table

    def _bytes(self) -> int:
        return self.table.nbytes + sum(
            a.nbytes for a in (self.st_found, self.st_cnt, self.st_ap, self.st_moves, self.st_ni)
        )

    def step(self, max_nodes: int = 0) -> int:
        """Search one chunk (``budget`` abstract states, or up to ``max_nodes`` in all when it
        is > 0); returns the status (RUNNING, SOLVED: the abstract game is won, UNSOLVABLE or
        MEMORY)."""
        budget = self.budget
        if max_nodes > 0:
            budget = max(min(budget, max_nodes - self.nodes), 1)
        while self.status == cs.RUNNING:
            tc = time.perf_counter()
            st = ca.arrangement_chunk(
                self.sb, self.hm, self.fm, self.radix, self.seqb, self.par, self.st_found,
                self.st_cnt, self.st_ap, self.st_moves, self.st_ni, self.table, self.xctl,
                budget,
            )  # fmt: skip
            self.ctl[cs.D_NODES] = self.ctl[cs.D_UNIQUE] = self.nodes
            self.ctl[cs.D_MAXD] = max(self.ctl[cs.D_MAXD], self.xctl[ca.X_DEPTH])
            if st == ca.A_GROW:
                if self._bytes() + 2 * self.table.nbytes > self.memory_limit:
                    self.status = cs.MEMORY
                else:
                    self.table = ca.arrangement_grow(self.table)
            elif st == ca.A_DEEP:
                if self._bytes() * 2 > self.memory_limit:
                    self.status = cs.MEMORY
                    break
                for name in ("st_found", "st_cnt", "st_ap", "st_moves", "st_ni"):
                    a = getattr(self, name)
                    setattr(self, name, np.concatenate([a, np.zeros_like(a)]))
            elif st == ca.A_RUN:
                # chunks of about 20-50 ms, as the driver's searches
                fast = time.perf_counter() - tc < 0.02
                self.budget = min(self.budget * 2, 200_000) if fast else max(self.budget // 2, 1000)
                return cs.RUNNING
            else:
                self.status = cs.UNSOLVABLE if st == ca.A_LOST else cs.SOLVED
        return self.status


def arrangement_search(rules: Rules, d: Deal, cfg: np.ndarray, memory_limit: int):
    """An :class:`ArrangementSearch` of deal ``d`` when ``rules`` ask for the relaxation and
    the deal fits it, else None."""
    if not rules.data["tableau piles"].get("arrangement relaxation"):
        return None
    inputs = _inputs(rules, d)
    return None if inputs is None else ArrangementSearch(inputs, cfg, memory_limit)
