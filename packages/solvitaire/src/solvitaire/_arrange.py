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

__all__ = ["ArrangementSearch", "arrangement_search", "concretize"]


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
    if bits > 63 or len(seq) > 26 or T > 16:
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
    interface of :class:`._driver.Search`) whose node count is its abstract states: its lost
    game proves the deal lost; when its game is won (and ``rules`` and ``deal`` are given),
    :func:`concretize` turns the winning line into real moves, which answer (the caller
    replays them like any solution); if that fails, the won game only ends it."""

    decisive = False
    relaxation = True
    label = "arrangement"
    #: nodes it searches for each node of the driver's other searches: it decides most
    #: Klondike deals alone (its states are fewer, and both answers come from it)
    pace = 6.0

    def __init__(self, inputs: tuple, cfg: np.ndarray, memory_limit: int,
                 rules: Rules | None = None, deal: Deal | None = None) -> None:  # fmt: skip
        self.sb, self.hm, self.fm, self.radix, self.seqb, self.par, start = inputs
        self.rules, self.deal = rules, deal
        self.moves: list | None = None  # real moves of a won abstract game, made concrete
        self.cfg = cfg.copy()
        self.cfg[cs.DCAP] = 0
        self.memory_limit = memory_limit
        self.max_slots = 0  # (set by the driver; this search reads memory_limit)
        rows, T = 64, self.sb.shape[0]
        self.st_found = np.zeros((rows, 4), np.int64)
        self.st_cnt = np.zeros((rows, T), np.int64)
        self.st_ap = np.zeros((rows, 2), np.int64)
        self.st_moves = np.zeros((rows, ca.MAX_MOVES), np.int64)
        self.st_ni = np.zeros((rows, 2), np.int64)
        found, cnt, alive, p = start
        self.st_found[0], self.st_cnt[0], self.st_ap[0] = found, cnt, (alive, p)
        self.table = np.zeros(1 << 12, np.int64)
        self.xctl = np.array([-1, 0, 0, ca.A_RUN], np.int64)
        self.ctl = np.zeros(cs.NCTL, np.int64)
        self.status = cs.RUNNING
        self.budget = 256  # states per chunk (most deals need a few hundred)
        # the root's moves now (budget 0): this also loads the compiled search on a process's
        # first deal, before any worker processes fork (winnability)
        self._end(self._chunk(0))

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
        """Whether its winning line was made into real moves (:func:`concretize`)."""
        return self.status == cs.SOLVED and self.moves is not None

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
            st = self._chunk(budget)
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
                self._end(st)
        return self.status

    def _end(self, st: int) -> None:
        """Record an answer of the compiled search (a won game is made concrete)."""
        if st == ca.A_LOST:
            self.status = cs.UNSOLVABLE
        elif st == ca.A_WON:
            self.status = cs.SOLVED
            if self.rules is not None:
                self.moves = concretize(self.rules, self.deal, self.winning_line())

    def _chunk(self, budget: int) -> int:
        return ca.arrangement_chunk(
            self.sb, self.hm, self.fm, self.radix, self.seqb, self.par, self.st_found,
            self.st_cnt, self.st_ap, self.st_moves, self.st_ni, self.table, self.xctl, budget,
        )  # fmt: skip

    def winning_line(self) -> list[tuple]:
        """The abstract states of the winning line found (after SOLVED), as
        :func:`_abstract_key` writes them."""
        out = []
        for r in range(int(self.xctl[ca.X_DEPTH]) + 1):
            alive, p = int(self.st_ap[r, 0]), int(self.st_ap[r, 1])
            found = tuple(int(x) for x in self.st_found[r])
            cnt = tuple(int(x) for x in self.st_cnt[r])
            out.append((found, cnt, alive, _waste_key(p, bin(alive).count("1"))))
        return out


def _abstract_key(g: GameState, structure: list[list[int]], seq: list[int]) -> tuple:
    """The abstract state of a real position (as ``_core.arrange`` keys it): foundation
    heights by suit, structure lengths, the stock cards left (a bit mask over the dealt
    order) and the waste size (0 for a waste holding every card left)."""
    found = [0] * 4
    for i, h in enumerate(g.found):
        found[i % 4] = h
    cnt = []
    for i, p in enumerate(g.tab):
        dn = g.down[i]
        on = len(p) > dn and dn < len(structure[i]) and p[dn] == structure[i][dn]
        cnt.append(dn + 1 if on else dn)
    left = list(g.waste) + g.stock[::-1]
    alive, j = 0, 0
    for q, c in enumerate(seq):
        if j < len(left) and left[j] == c:
            alive |= 1 << q
            j += 1
    return (tuple(found), tuple(cnt), alive, _waste_key(len(g.waste), len(left)))


def _waste_key(p: int, left: int) -> int:
    """The waste size as keyed: a waste of every card left reaches what a fresh pass does, so
    it is keyed as 0 (as ``_core.arrange._key`` does)."""
    return 0 if p == left else p


def concretize(rules: Rules, d: Deal, path: list[tuple], max_positions: int = 100_000):
    """Real moves that follow a winning line of the abstract game (``path``: its states as
    :func:`_abstract_key` gives them), or None: before each abstract move, a breadth-first
    search over the moves that leave the abstract state as it is (runs moved between piles
    off placed cards) finds a position where a real move makes that abstract move; at most
    ``max_positions`` positions in all. The moves still have to be replayed."""
    from collections import deque

    g = GameState(d, rules)
    structure = [list(p[: g.down[i] + 1]) for i, p in enumerate(g.tab)]
    seq = list(g.waste) + g.stock[::-1]
    cur = _abstract_key(g, structure, seq)
    if cur != path[0]:
        return None
    moves: list = []
    budget = max_positions
    for target in path[1:]:
        frontier = deque([(g, [])])
        seen = {g.key()}
        hit = None
        while frontier and hit is None:
            h, ms = frontier.popleft()
            for m in h.legal_moves():
                h2 = h.copy()
                h2.apply(m)
                a = _abstract_key(h2, structure, seq)
                if a == target:
                    hit = (h2, [*ms, m])
                    break
                k = h2.key()
                if a == cur and k not in seen:
                    seen.add(k)
                    frontier.append((h2, [*ms, m]))
                    budget -= 1
            if budget <= 0:
                return None
        if hit is None:
            return None
        g, extra = hit
        moves += extra
        cur = target
    return moves if g.won() else None


def arrangement_search(rules: Rules, d: Deal, cfg: np.ndarray, memory_limit: int):
    """An :class:`ArrangementSearch` of deal ``d`` when ``rules`` ask for the relaxation and
    the deal fits it, else None."""
    if not rules.data["tableau piles"].get("arrangement relaxation"):
        return None
    inputs = _inputs(rules, d)
    return None if inputs is None else ArrangementSearch(inputs, cfg, memory_limit, rules, d)
