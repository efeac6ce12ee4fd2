"""``solve``: compile rules and a deal for the numba core, run the search, verify the answer."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

import numpy as np

from . import _core as cm
from . import _core as cs
from ._deal import Deal
from ._deal import deal as make_deal
from ._engine import GameState, Move
from ._rules import Rules, load_rules

__all__ = ["Result", "Status", "compile_rules", "solve"]

_BUILD = {"any-suit": 0, "red-black": 1, "same-suit": 2, "no-build": 3}
# "partial-if-card-above-buildable": a part of a built group goes onto a card only when the
# card it uncovers can go to a foundation (the reference's rule, a proven dominance in Klondike).
_GMODE = {
    "no": 0,
    "yes": 1,
    "whole-pile": 2,
    "maximal-group": 3,
    "partial-if-card-above-buildable": 4,
}
_Z = cm.zobrist_table()
_SPACES = {
    "any": 0,
    "no-build": 1,
    "kings": 2,
    "auto-reserve-then-any": 3,
    "auto-reserve-then-waste": 4,
    "auto-waste-then-stock": 5,
}
_DTYPE = {"waste": 0, "tableau piles": 1, "hole": 2}


#: Solutions whose DFS path is longer than this are shortened by :func:`_core.shortcut_path`
#: before the replay (on shorter paths the shortcut search costs more than it saves).
SHORTCUT_MIN_DEPTH = 4096


class Status(str, enum.Enum):
    """Outcome of a search."""

    SOLVED = "solved"
    UNSOLVABLE = "unsolvable"
    TIMEOUT = "timed-out"
    MEMORY_LIMIT = "memory-limit"


@dataclass
class Result:
    """``status``; ``moves`` (list of :class:`Move`, empty unless SOLVED); ``stats`` (dict:
    ``states`` nodes searched, ``unique_states``, ``dominance_moves``, ``backtracks``,
    ``max_depth``, ``seconds`` wall time, ``states_per_s``); ``notation``: readable moves
    (written on first use, from a second replay of the already verified moves)."""

    status: Status
    moves: list[Move] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    _source: tuple | None = field(default=None, repr=False, compare=False)
    _notation: list[str] | None = field(default=None, repr=False, compare=False)

    @property
    def solved(self) -> bool:
        return self.status == Status.SOLVED

    @property
    def notation(self) -> list[str]:
        """One readable line per move of :attr:`moves` (empty unless SOLVED)."""
        if self._notation is None:
            self._notation = [] if self._source is None else verify_moves(*self._source)
        return self._notation


def _unsupported(rules: Rules) -> None:
    r = rules.data
    if r["accordion"]["size"]:
        raise NotImplementedError("rule feature 'accordion' is not supported by the solver yet")
    if r["sequences"]["count"]:
        raise NotImplementedError(
            "rule feature 'sequences' (Gaps) is not supported by the solver yet"
        )


def compile_rules(rules: Rules, d: Deal) -> tuple[np.ndarray, np.ndarray]:
    """(cfg int64[NCFG], initial state int8[SSIZE]) for the compiled core."""
    _unsupported(rules)
    r = rules.data
    tp, st = r["tableau piles"], r["stock"]
    nt = tp["count"]
    nr = len(d.reserve)
    nc = r["cells"]["count"]
    nf = len(d.foundations)
    mr = rules.max_rank
    gp = tp["move built group policy"]
    gp = tp["build policy"] if gp == "same-as-build" else gp
    dtype = _DTYPE[st["deal type"]]
    extra_t = (len(d.stock) // max(nt, 1) + 1) if dtype == 1 else 0
    cap = max(
        max((len(p) for p in d.tableau), default=0) + mr * rules.decks + extra_t,
        len(d.stock) + len(d.waste),
        sum(len(p) for p in d.reserve),
        1,
    )
    cap = min(cap, rules.n_cards + 1)
    np_ = nt + nr + 2
    cfg = np.zeros(cm.NCFG, np.int64)
    f = r["foundations"]
    two = rules.decks == 2
    down = f.get("direction", "up") == "down"
    vals = {
        cm.T: nt,
        cm.R: nr,
        cm.C: nc,
        cm.NF: nf,
        cm.MR: mr,
        cm.BUILD: _BUILD[tp["build policy"]],
        cm.GPOL: _BUILD[gp],
        cm.GMODE: _GMODE[tp["move built group"]],
        cm.SPACES: _SPACES[tp["spaces policy"]],
        cm.FPRES: int(f["present"]),
        cm.FREM: int(f["removable"]),
        cm.FCOMP: int(f["only complete pile moves"]),
        cm.HPRES: int(r["hole"]["present"]),
        cm.HLOOP: int(r["hole"]["build loops"]),
        cm.DTYPE: dtype,
        cm.DCOUNT: st["deal count"],
        cm.REDEALS: rules.redeals,
        cm.RSTACK: int(r["reserve"]["stacked"]),
        cm.BASE: d.base,
        cm.DOM: int(f["present"] and not two and not f["only complete pile moves"] and not down),
        cm.CAP: cap,
        cm.NCARDS: rules.n_cards,
        cm.NP: np_,
        cm.SYM: int(dtype != 1),
        cm.FDOWN: int(down),
        # hole games without foundations or building: suits never matter (exact symmetry)
        cm.SUITSYM: int(
            r["hole"]["present"] and not f["present"] and tp["build policy"] == "no-build"
        ),
        cm.SSIZE: st["size"],
        cm.GPLACE: int(tp.get("built group placement", "build-policy") == "group-policy"),
        cm.RPRUNE: 1,
        # a search hint from the rules (tableau piles.search order): "shortest-pile-first"
        # tries moves off and onto the shortest piles first, and the largest groups first
        cm.ORDER: int(tp.get("search order", "last-pile-first") == "shortest-pile-first"),
    }
    of = 2
    oc = of + nf
    ol = oc + nc
    od = ol + np_
    odata = od + nt
    vals.update({cm.OFF_F: of, cm.OFF_C: oc, cm.OFF_L: ol, cm.OFF_D: od, cm.OFF_DATA: odata})
    cfg[list(vals)] = list(vals.values())
    flat = [0] * (odata + np_ * cap)  # built as a list, converted once
    gs = GameState(d, rules)  # normalised start (auto-fills, turned-up cards)
    flat[1] = gs.hole
    flat[of : of + nf] = gs.found
    flat[oc : oc + nc] = gs.cells
    piles = gs.tab + gs.reserve + [gs.stock, gs.waste]
    for p, cards in enumerate(piles):
        flat[ol + p] = len(cards)
        base = odata + p * cap
        flat[base : base + len(cards)] = cards
    flat[od : od + nt] = gs.down
    S = np.array(flat, np.int8)
    return cfg, S


_KIND_TO_MOVE = {
    cm.K_T2F: ("t", "f"),
    cm.K_T2T: ("t", "t"),
    cm.K_T2C: ("t", "c"),
    cm.K_C2T: ("c", "t"),
    cm.K_C2F: ("c", "f"),
    cm.K_R2T: ("r", "t"),
    cm.K_R2F: ("r", "f"),
    cm.K_F2T: ("f", "t"),
    cm.K_T2H: ("t", "h"),
    cm.K_C2H: ("c", "h"),
    cm.K_R2H: ("r", "h"),
    cm.K_SPIDER: ("t", "f"),
    cm.K_R2C: ("r", "c"),
}


def _to_move(row: list[int], rules: Rules) -> Move:
    """The engine's :class:`Move` for one compiled move row ``[kind, a, b, n, steps, ...]``."""
    kind, a, b, n, steps = row[:5]
    if kind == cm.K_W:
        dst, di = (("f", 0), ("t", b), ("c", b))[n]
        return Move("w", steps, 1, dst, di)
    if kind == cm.K_DEAL:
        return Move("s", 0, 1, "h" if rules["stock"]["deal type"] == "hole" else "-", 0)
    src, dst = _KIND_TO_MOVE[kind]
    many = kind in (cm.K_T2T, cm.K_SPIDER)
    return Move(src, a, n if many else 1, dst, b if dst in ("t", "c") else 0)


def verify_moves(
    d: Deal, rules: Rules | str, moves: list[Move], notation: bool = True
) -> list[str]:
    """Replay ``moves`` with the independent engine; return their notation (an empty list when
    ``notation`` is False). Raises ``ValueError`` if a move is illegal or the final position is
    not won. ``rules``: a Rules or a game name."""
    rules = load_rules(rules)
    gs = GameState(d, rules)
    out = []
    for i, m in enumerate(moves):
        if notation:
            out.append(gs.describe(m))
        try:
            gs.apply(m)
        except ValueError as e:
            raise ValueError(f"solution move {i + 1} is illegal: {e}") from None
    if not gs.won():
        raise ValueError(f"solution of {len(moves)} moves does not win the game")
    return out


def solve(
    deal: Deal | int,
    rules: Rules | str,
    *,
    timeout: float | None = None,
    max_states: int | None = None,
    memory_limit: int = 1024 * 2**20,
    max_depth: int = 2_000_000,
    streamline: bool = True,
) -> Result:
    """Decide a deal: depth-first search with a transposition table (compiled with numba).

    ``deal`` is a :class:`Deal` or a seed (dealt with :func:`solvitaire.deal`); ``timeout`` in
    seconds; ``max_states`` bounds nodes searched (reported as TIMEOUT when hit);
    ``memory_limit`` in bytes bounds the transposition table (16 bytes per state).
    Every SOLVED result is replayed by the independent engine before it is returned.
    Section 2 of the Solvitaire paper (Blake & Gent, arXiv:1906.12314) describes the search.

    ``streamline``: in games that deal the stock to every pile, first search for a tenth of
    the budget treating the piles as interchangeable even while the stock holds cards (a
    streamliner: it may miss solutions, like the paper's section 6 streamliners); a solution
    it finds is real (and replayed), any other answer is discarded and the exact search runs
    with the rest of the budget. So the answer never depends on the streamliner.
    """
    rules = load_rules(rules)
    if isinstance(deal, (int, np.integer)) and not isinstance(deal, bool):
        deal = make_deal(rules, int(deal))
    if not isinstance(deal, Deal):
        raise TypeError(f"deal must be a Deal or an int seed, got {type(deal).__name__}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    if memory_limit < 2**16:
        raise ValueError(f"memory_limit must be at least 65536 bytes, got {memory_limit}")
    st = rules.data["stock"]
    if not (streamline and st["deal type"] == "tableau piles" and st["size"] > 0):
        return _search(deal, rules, timeout, max_states, memory_limit, max_depth, False)
    first = _search(
        deal,
        rules,
        None if timeout is None else 0.1 * timeout,
        max(max_states // 10, 1) if max_states else (None if timeout else 1_000_000),
        memory_limit,
        max_depth,
        True,
    )
    if first.solved:
        first.stats["streamliner"] = "pile symmetry"
        return first
    spent = first.stats["seconds"]
    res = _search(
        deal,
        rules,
        None if timeout is None else max(timeout - spent, 1e-3),
        max(max_states - first.stats["states"], 1) if max_states else None,
        memory_limit,
        max_depth,
        False,
    )
    res.stats["seconds"] += spent
    res.stats["streamliner_states"] = first.stats["states"]
    return res


def _doubled(x: np.ndarray) -> np.ndarray:
    """``x`` in a buffer of twice as many rows; the new rows are left unwritten (the search
    writes every row before it reads it), so their memory is only touched when used."""
    y = np.empty((2 * x.shape[0], *x.shape[1:]), x.dtype)
    y[: x.shape[0]] = x
    return y


def _search(deal, rules, timeout, max_states, memory_limit, max_depth, pile_sym) -> Result:
    """One search (see :func:`solve`); ``pile_sym`` forces pile symmetry (a streamliner)."""
    cfg, S0 = compile_rules(rules, deal)
    if pile_sym:
        cfg[cm.SYM] = 1
    t0 = time.perf_counter()
    max_slots = 1 << int(np.log2(max(memory_limit // 32, 1024)))  # table gets <= half the budget
    slots = min(max_slots, 1 << 12)  # doubled (rehashed) as the search fills it
    tab = np.zeros((slots, 2), np.uint64)
    # the stacks: every row is written before it is read, so they start uninitialised
    depth_cap = 256
    states = np.empty((depth_cap, S0.shape[0]), np.int8)
    states[0] = S0
    mv = np.empty((2 * cm.MAX_MOVES_NODE, 7), np.int16)
    fs = np.empty(depth_cap, np.int64)
    fe = np.empty(depth_cap, np.int64)
    fn = np.empty(depth_cap, np.int64)
    path = np.empty(depth_cap, np.int64)
    ctl = np.zeros(cs.NCTL, np.int64)
    ctl[cs.D_CANGROW] = int(slots < max_slots)
    status = cs.RUNNING
    if cm.won(S0, cfg):
        status = cs.SOLVED
    else:
        cs.expand(states, 0, cfg, mv, fs, fe, fn, path, tab, _Z, ctl)
    timed_out = False
    budget = 20_000
    while status == cs.RUNNING:
        tc = time.perf_counter()
        status = cs.search_chunk(
            states, cfg, mv, fs, fe, fn, path, tab, _Z, ctl, budget, max_states or 0
        )
        # chunks of about 20-50 ms keep the timeout check prompt on a loaded machine too
        dt = time.perf_counter() - tc
        grow = dt < 0.02
        if status == cs.GROW:
            stacks = states.nbytes + mv.nbytes + 32 * fs.shape[0]
            if 3 * tab.nbytes + stacks > memory_limit:  # old + doubled table must fit
                ctl[cs.D_CANGROW] = 0  # fill this table (to 90 %) instead
            else:
                bigger = np.zeros((tab.shape[0] * 2, 2), np.uint64)
                cs.tt_rehash(tab, bigger)
                tab = bigger
                ctl[cs.D_CANGROW] = int(tab.shape[0] < max_slots)
            status = cs.RUNNING
            continue
        if status == cs.BUFFER:
            grow_rows = states.shape[0] - 1 <= ctl[cs.D_DEPTH] + 1
            extra = (states.nbytes + 32 * fs.shape[0]) if grow_rows else mv.nbytes
            mem_used = tab.nbytes
            if mem_used + states.nbytes + mv.nbytes + extra > memory_limit or (
                grow_rows and states.shape[0] >= max_depth
            ):
                status = cs.MEMORY
                break
            if grow_rows:
                states = _doubled(states)
                fs, fe, fn, path = (_doubled(x) for x in (fs, fe, fn, path))
            else:
                mv = _doubled(mv)
            status = cs.RUNNING
            continue
        if status != cs.RUNNING:
            break
        if max_states and ctl[cs.D_NODES] >= max_states:
            timed_out = True
            break
        if timeout is not None and time.perf_counter() - t0 > timeout:
            timed_out = True
            break
        budget = min(budget * 2, 200_000) if grow else max(budget // 2, 1000)
    secs = time.perf_counter() - t0
    stats = {
        "states": int(ctl[cs.D_NODES]),
        "unique_states": int(ctl[cs.D_UNIQUE]),
        "dominance_moves": int(ctl[cs.D_DOM]),
        "backtracks": int(ctl[cs.D_BACK]),
        "max_depth": int(ctl[cs.D_MAXD]),
        "seconds": secs,
        "states_per_s": ctl[cs.D_NODES] / secs if secs > 0 else 0.0,
    }
    if timed_out:
        return Result(Status.TIMEOUT, stats=stats)
    if status == cs.MEMORY:
        return Result(Status.MEMORY_LIMIT, stats=stats)
    if status == cs.UNSOLVABLE:
        return Result(Status.UNSOLVABLE, stats=stats)
    depth = int(ctl[cs.D_DEPTH])
    stats["path_length"] = depth
    if depth > SHORTCUT_MIN_DEPTH:  # long DFS paths: remove their detours
        rows = np.empty((depth, mv.shape[1]), mv.dtype)
        rows = rows[: cs.shortcut_path(states, depth, cfg, mv, path, rows)]
    else:
        rows = mv[path[1 : depth + 1]]
    moves = [_to_move(row, rules) for row in rows.tolist()]
    try:
        verify_moves(deal, rules, moves, notation=False)
    except ValueError as e:  # a solver bug: never report an unverified solution
        raise RuntimeError(f"internal error: the solver's solution failed verification: {e}") from e
    stats["solution_length"] = len(moves)
    return Result(Status.SOLVED, moves, stats, _source=(deal, rules, moves))
