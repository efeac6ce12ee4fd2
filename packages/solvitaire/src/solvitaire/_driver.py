"""Drive the compiled search: resumable searches, grown buffers, one to three move orders.

A :class:`Search` owns one depth-first search of the compiled core (its stacks, transposition
table and counters) and runs it a chunk at a time, growing the table and the stacks within
its memory budget. :func:`run` runs one search, or two or three searches of the same deal
that try the tableau moves in different orders, in alternation (each gets the next chunk
while it has searched fewer nodes than the others, once the first has had a head start).
All are complete searches, so whichever decides the deal first gives the answer: a solution
is a solution, and an exhausted search proves the deal unsolvable whatever its move order.
k searches cost at most about k times the best order's nodes (plus the head start), and much
less than a worse order where the orders differ by orders of magnitude.
"""

from __future__ import annotations

import time

import numpy as np

from . import _core as cs
from ._rules import SEARCH_ORDERS

__all__ = ["Search", "run"]

#: With several searches, nodes the first one searches alone before the others start.
HEAD_START = 512
#: A relaxation search keeps pace with the others for its first RELAXATION_NODES nodes, then
#: gets about RELAXATION_PACE times the nodes of each (its proofs are quick or take long).
RELAXATION_NODES = 6_000_000
RELAXATION_PACE = 0.1
_WARM = False  # whether this process has compiled (or loaded) the search already


def _pace(s: Search, head: int) -> float:
    """The alternation's key: nodes searched (less a head start); a relaxation's count as
    they are up to :data:`RELAXATION_NODES`, then scaled up by 1 / :data:`RELAXATION_PACE`
    (an ``extra`` search's are divided by its ``pace``: the arrangement relaxation searches
    that many nodes for each node of the others)."""
    if not isinstance(s, Search):
        return s.nodes / s.pace - head
    n = s.nodes - head
    if s.relaxation and n > RELAXATION_NODES:
        return RELAXATION_NODES + (n - RELAXATION_NODES) / RELAXATION_PACE
    return n


def _doubled(x: np.ndarray) -> np.ndarray:
    """``x`` in a buffer of twice as many rows; the new rows are left unwritten (the search
    writes every row before it reads it), so their memory is only touched when used."""
    y = np.empty((2 * x.shape[0], *x.shape[1:]), x.dtype)
    y[: x.shape[0]] = x
    return y


class Search:
    """One resumable compiled DFS of the state ``S0`` (int8) under ``cfg`` (int64[NCFG]);
    ``memory_limit`` in bytes bounds its table and stacks; ``max_depth`` its path length."""

    def __init__(self, cfg: np.ndarray, S0: np.ndarray, Z: np.ndarray, memory_limit: int,
                 max_depth: int, budget: int = 20_000, decisive: bool = True,
                 relaxation: bool = False) -> None:  # fmt: skip
        self.cfg, self.Z, self.S0 = cfg, Z, S0
        # a search that is not decisive may answer only with a solution (a streamliner) or,
        # when it searches a relaxation of the game (more moves), only "unsolvable"
        self.decisive = decisive and not relaxation
        self.relaxation = relaxation
        self.memory_limit, self.max_depth = memory_limit, max_depth
        self.max_slots = self.slots_for(memory_limit)
        slots = min(self.max_slots, 1 << 12)
        self.tab = np.zeros((slots, 2), np.uint64)
        # the stacks: every row is written before it is read, so they start uninitialised
        cap = 256
        self.states = np.empty((cap, S0.shape[0]), np.int8)
        self.states[0] = S0
        self.mv = np.empty((2 * cs.MAX_MOVES_NODE, 7), np.int16)
        self.fs, self.fe, self.fn, self.path = (np.empty(cap, np.int64) for _ in range(4))
        self.ctl = np.zeros(cs.NCTL, np.int64)
        self.ctl[cs.D_CANGROW] = int(slots < self.max_slots)
        self.budget = budget  # nodes per chunk: adapts to about 20-50 ms per chunk
        # the pile games' states, or the row games' (Accordion, Gaps)
        rows = cfg[cs.FAMILY] != 0
        won, expand = (cs.rows_won, cs.rows_expand) if rows else (cs.won, cs.expand)
        if won(S0, cfg):
            self.status = cs.SOLVED
        else:
            self.status = cs.RUNNING
            expand(self.states, 0, cfg, self.mv, self.fs, self.fe, self.fn, self.path,
                   self.tab, Z, self.ctl)  # fmt: skip

    @staticmethod
    def slots_for(memory_limit: int) -> int:
        """Most table slots for a budget: the table gets at most half of it (16 bytes a slot);
        it starts small and doubles as it fills."""
        return 1 << int(np.log2(max(memory_limit // 32, 1024)))

    def release(self) -> None:
        """Drop the stacks and the table (after MEMORY); counters and the status stay."""
        self.states = self.mv = self.tab = np.zeros((1, 1), np.int8)
        self.fs = self.fe = self.fn = self.path = np.zeros(1, np.int64)

    @property
    def answers_no(self) -> bool:
        """Whether this search proved the deal unsolvable (an exact search's or a
        relaxation's: a game with more moves is lost only if the deal is; a streamliner's
        never does; a depth-limited one's only when its limit cut nothing)."""
        if self.status != cs.UNSOLVABLE:
            return False
        if self.decisive or self.relaxation:
            return True
        return self.cfg[cs.DCAP] > 0 and self.ctl[cs.D_CUT] == 0

    @property
    def answers_yes(self) -> bool:
        """Whether this search found a solution of the deal (a relaxation's proves nothing)."""
        return self.status == cs.SOLVED and not self.relaxation

    @property
    def deepen(self) -> bool:
        """Whether this is a depth-limited search that ran out of moves below its limit
        (then it starts again with a limit 4 times deeper)."""
        return self.status == cs.UNSOLVABLE and self.cfg[cs.DCAP] > 0 and self.ctl[cs.D_CUT] > 0

    def deeper(self) -> Search:
        """A fresh search like this one with a 4 times deeper limit; it carries the node
        count on (the alternation gives chunks to the search with the fewest nodes)."""
        cfg = self.cfg.copy()
        cfg[cs.DCAP] *= 4
        s = Search(cfg, self.S0, self.Z, self.memory_limit, self.max_depth,
                   self.budget, self.decisive, self.relaxation)  # fmt: skip
        for i in (cs.D_NODES, cs.D_UNIQUE, cs.D_DOM, cs.D_BACK, cs.D_DEAD, cs.D_SDOM):
            s.ctl[i] += self.ctl[i]
        return s

    @property
    def nodes(self) -> int:
        return int(self.ctl[cs.D_NODES])

    def step(self, max_nodes: int = 0) -> int:
        """Search one chunk (about 20-50 ms, the chunk size adapts), stopping at ``max_nodes``
        nodes in all when it is > 0. Returns the status: RUNNING, SOLVED, UNSOLVABLE or
        MEMORY (the budget or ``max_depth`` cannot hold the search)."""
        while self.status == cs.RUNNING:
            tc = time.perf_counter()
            st = cs.search_chunk(self.states, self.cfg, self.mv, self.fs, self.fe, self.fn,
                                 self.path, self.tab, self.Z, self.ctl, self.budget,
                                 max_nodes)  # fmt: skip
            if st == cs.GROW:
                self._grow_table()
            elif st == cs.BUFFER:
                if not self._grow_stacks():
                    self.status = cs.MEMORY
            elif st == cs.RUNNING:
                fast = time.perf_counter() - tc < 0.02
                self.budget = min(self.budget * 2, 200_000) if fast else max(self.budget // 2, 1000)
                return st
            else:
                self.status = st
        return self.status

    def _grow_table(self) -> None:
        stacks = self.states.nbytes + self.mv.nbytes + 32 * self.fs.shape[0]
        if 3 * self.tab.nbytes + stacks > self.memory_limit:  # old + doubled table must fit
            self.ctl[cs.D_CANGROW] = 0  # fill this table (to 90 %) instead
            return
        bigger = np.zeros((self.tab.shape[0] * 2, 2), np.uint64)
        cs.tt_rehash(self.tab, bigger)
        self.tab = bigger
        self.ctl[cs.D_CANGROW] = int(self.tab.shape[0] < self.max_slots)

    def _grow_stacks(self) -> bool:
        rows = self.states.shape[0] - 1 <= self.ctl[cs.D_DEPTH] + 1
        extra = (self.states.nbytes + 32 * self.fs.shape[0]) if rows else self.mv.nbytes
        used = self.tab.nbytes + self.states.nbytes + self.mv.nbytes
        if used + extra > self.memory_limit or (rows and self.states.shape[0] >= self.max_depth):
            return False
        if rows:
            self.states = _doubled(self.states)
            self.fs, self.fe, self.fn, self.path = (
                _doubled(x) for x in (self.fs, self.fe, self.fn, self.path)
            )
        else:
            self.mv = _doubled(self.mv)
        return True

    def solution_rows(self, shortcut_min_depth: int) -> np.ndarray:
        """The move rows of the solution (after SOLVED); a path longer than
        ``shortcut_min_depth`` is shortened by :func:`_core.shortcut_path` first."""
        depth = int(self.ctl[cs.D_DEPTH])
        if depth > shortcut_min_depth and self.cfg[cs.FAMILY] == 0:
            rows = np.empty((depth, self.mv.shape[1]), self.mv.dtype)
            n = cs.shortcut_path(self.states, depth, self.cfg, self.mv, self.path, rows)
            return rows[:n]
        return self.mv[self.path[1 : depth + 1]]


def run(
    cfgs: list[np.ndarray],
    S0: np.ndarray,
    Z: np.ndarray,
    *,
    timeout: float | None,
    max_states: int | None,
    memory_limit: int,
    max_depth: int,
    decisive: list[bool] | None = None,
    head_start: int | None = None,
    relaxed: list[bool] | None = None,
    extra: list | None = None,
) -> tuple[str, Search, dict]:
    """Run one search per ``cfg`` in alternation (the memory budget split in shares: two per
    decisive search, one per streamliner) until one
    decides the deal, or the time, node or memory limits end them. Returns ``(outcome,
    search, stats)``: outcome ``"solved"``, ``"unsolvable"``, ``"timeout"`` or ``"memory"``;
    ``search`` is the one that decided (else the first); stats sum over the searches.
    ``decisive[i]`` False marks search i as a streamliner (a search that may miss
    solutions): its solution answers, but its exhausted search only ends it (its memory
    then goes to the others). ``relaxed[i]`` True marks search i as a relaxation (a game
    with more moves, e.g. a draw-3 stock dealt one card at a time): its exhausted search
    proves the deal unsolvable, its solution only ends it; it keeps pace with the others
    for :data:`RELAXATION_NODES` nodes, then gets :data:`RELAXATION_PACE` times their
    nodes. ``head_start``: nodes the first search runs alone before the others start
    (default :data:`HEAD_START`). ``extra``: more searches, built already, with the interface
    of :class:`Search` (e.g. :class:`._arrange.ArrangementSearch`, a relaxation that keeps
    pace with the others); they start with the first search, with one memory share each."""
    hs = HEAD_START if head_start is None else head_start
    decisive = [True] * len(cfgs) if decisive is None else decisive
    relaxed = [False] * len(cfgs) if relaxed is None else relaxed
    decisive = [d and not r for d, r in zip(decisive, relaxed)]  # (as Search has it)
    # numba compiles the search on its first call in a process (tens of seconds in a fresh
    # install whose on-disk cache is empty); that time is not the search's, so the clock
    # restarts after it and a timeout never ends a search before its first chunk
    # (one compiled search serves the pile and the row games)
    global _WARM
    cold = not _WARM and not (cs.search_chunk.signatures and cs.expand.signatures)
    _WARM = True  # (asking numba for its signatures costs ~0.1 ms: once per process)
    t0 = time.perf_counter()
    # the memory budget in shares: a decisive search two, a streamliner one, so that a
    # streamliner (whose merged states are fewer) fills its table first and hands its memory
    # to the exact searches, instead of an exact search running out beside it
    extra = list(extra or ())
    weights = [2 if d else 1 for d in decisive] + [1] * len(extra)
    shares = [memory_limit * w // sum(weights) for w in weights]
    for x, share in zip(extra, shares[len(cfgs) :]):
        x.memory_limit = share
    # alternating searches start with small chunks: most deals take only a few hundred nodes
    budget = 20_000 if len(cfgs) == 1 else 256
    searches = [Search(cfgs[0], S0, Z, shares[0], max_depth, budget, decisive[0], relaxed[0])]
    searches += extra  # (no head start for them: the arrangement relaxation's are quick)
    started = 1  # searches of ``cfgs`` started
    if cold:
        t0 = time.perf_counter()
    active = list(searches)
    outcome, winner = "memory", searches[0]
    while True:
        first = searches[0]
        while started < len(cfgs) and (
            first.nodes >= hs
            or (first.status != cs.RUNNING and not (first.answers_yes or first.answers_no))
        ):
            # the other searches start once the first has had its head start
            i = started
            started += 1
            searches.append(
                Search(cfgs[i], S0, Z, shares[i], max_depth, budget, decisive[i], relaxed[i])
            )
            active.append(searches[-1])
        done = next((s for s in active if s.answers_yes or s.answers_no), None)
        if done is None:
            for i, s in enumerate(searches):
                if s in active and s.deepen:
                    searches[i] = s.deeper()  # (the old one's stacks and table are dropped)
                    active[active.index(s)] = searches[i]
        if done is not None:
            outcome, winner = ("solved" if done.status == cs.SOLVED else "unsolvable"), done
            break
        # (UNSOLVABLE here: a streamliner's, SOLVED a relaxation's: no answer)
        ended = (cs.MEMORY, cs.UNSOLVABLE, cs.SOLVED)
        if any(s.status in ended for s in active):
            # a search that ran out of memory gives up its stacks and table; the others may
            # then use the whole budget
            for s in active:
                if s.status in ended:
                    s.release()
            for s in active:
                if s.status == cs.RUNNING:
                    s.memory_limit = memory_limit
                    s.max_slots = Search.slots_for(memory_limit)
                    s.ctl[cs.D_CANGROW] = int(s.tab.shape[0] < s.max_slots)
        active = [s for s in active if s.status == cs.RUNNING]
        answering = (s.decisive or s.relaxation or s.cfg[cs.DCAP] > 0 for s in active)
        if not any(answering) and started == len(cfgs):
            # every decisive search ran out of memory (a streamliner's "unsolvable" proves
            # nothing, and a streamliner alone is not run on; a depth-limited search or a
            # relaxation is: a depth-limited search's short stacks often outlive a search run
            # out of memory down a deep path)
            break
        total = sum(s.nodes for s in searches)
        if (max_states and total >= max_states) or (
            timeout is not None and time.perf_counter() - t0 > timeout
        ):
            outcome = "timeout"
            break
        # the one behind gets the next chunk; the first (the rules' own order) runs ``hs``
        # nodes before the second starts: most deals are decided within a few hundred nodes
        # (the extra searches keep pace with the first from its start)
        s = min(active, key=lambda x: _pace(x, hs if x is searches[0] or x in extra else 0))
        s.step(s.nodes + max_states - total if max_states else 0)
        if cold:
            cold = False
            t0 = time.perf_counter()
    secs = time.perf_counter() - t0
    ctl = sum(s.ctl for s in searches)
    stats = {
        "states": int(ctl[cs.D_NODES]),
        "unique_states": int(ctl[cs.D_UNIQUE]),
        "dominance_moves": int(ctl[cs.D_DOM]),
        "deadlocks": int(ctl[cs.D_DEAD]),
        "stock_dominated": int(ctl[cs.D_SDOM]),
        "backtracks": int(ctl[cs.D_BACK]),
        "max_depth": int(max(s.ctl[cs.D_MAXD] for s in searches)),
        "seconds": secs,
        "states_per_s": ctl[cs.D_NODES] / secs if secs > 0 else 0.0,
    }
    if outcome in ("solved", "unsolvable") and winner.cfg[cs.DCAP] > 0:
        stats["decided_by"] = "depth-limited"
        stats["depth_limit"] = int(winner.cfg[cs.DCAP])
    elif outcome in ("solved", "unsolvable") and hasattr(winner, "label"):
        stats["decided_by"] = "relaxation"
        stats["relaxation"] = winner.label
    elif outcome == "unsolvable" and winner.relaxation:
        stats["decided_by"] = "relaxation"
        stats["relaxation"] = f"draw {int(winner.cfg[cs.DCOUNT])}"
    elif outcome == "solved" and not winner.decisive:
        stats["decided_by"] = "streamliner"
        stats["streamliner"] = "colour symmetry" if winner.cfg[cs.SUITSYM] == 2 else "pile symmetry"
    elif len(searches) > 1 and outcome in ("solved", "unsolvable"):
        names = {code: name for name, code in SEARCH_ORDERS.items()}
        stats["decided_by"] = names[int(winner.cfg[cs.ORDER])]
    ss = [s for s in searches if not (s.decisive or s.relaxation)]
    if ss:
        stats["streamliner_states"] = sum(s.nodes for s in ss)
    rs = [s for s in searches if s.relaxation]
    if rs:
        stats["relaxation_states"] = sum(s.nodes for s in rs)
    return outcome, winner, stats
