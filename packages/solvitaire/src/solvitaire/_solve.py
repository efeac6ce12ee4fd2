"""``solve``: compile rules and a deal for the numba core, run the search, verify the answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from . import _core as cm
from . import _core as cs
from . import _driver
from ._arrange import arrangement_search
from ._deal import Deal
from ._deal import deal as make_deal
from ._engine import GameState, Move
from ._rules import SEARCH_ORDERS, WASTE_FILLED_SPACES, Rules, load_rules

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


_APOL = {"same-suit": 1, "same-rank": 2, "red-black": 4, "any-suit": 8}
_GDIR = {"L": 1, "R": 2, "LR": 3}


def _row_cfg(r: dict) -> dict[int, int]:
    """The ``cfg`` entries of the row games (Accordion, Gaps; see :mod:`._core.rows`)."""
    acc, seq = r["accordion"], r["sequences"]
    if acc["size"]:
        left = right = 0
        for m in acc["moves"]:
            bit = 1 << int(m[1:])
            left, right = (left | bit, right) if m[0] == "L" else (left, right | bit)
        return {
            cm.FAMILY: 1,
            cm.ALEFT: left,
            cm.ARIGHT: right,
            cm.APOL: sum({_APOL[p] for p in acc["build policies"]}),
        }
    if seq["count"]:
        return {
            cm.FAMILY: 2,
            cm.GROWS: seq["count"],
            cm.GDIR: _GDIR[seq["direction"]],
            cm.GFIXED: int(seq["fixed suit"]),
            cm.BUILD: _BUILD[seq["build policy"]],
        }
    return {cm.FAMILY: 0}


def _orders(tp: dict) -> list[int]:
    """The core's move-order codes of ``tableau piles.search order``: one order, or two or
    three searched in alternation ("both" = last pile first and shortest pile first)."""
    so = tp.get("search order", "last-pile-first")
    if so == "both":
        so = ["last-pile-first", "shortest-pile-first"]
    return [SEARCH_ORDERS[o] for o in ([so] if isinstance(so, str) else so)]


def _rules_cfg(rules: Rules) -> dict[int, int]:
    """The ``cfg`` entries that depend on the rules alone (computed once per Rules object)."""
    cached = rules.__dict__.get("_cfg_cache")
    if cached is not None:
        return cached
    r = rules.data
    tp, st, f = r["tableau piles"], r["stock"], r["foundations"]
    gp = tp["move built group policy"]
    gp = tp["build policy"] if gp == "same-as-build" else gp
    dtype = _DTYPE[st["deal type"]]
    two = rules.decks == 2
    down = f.get("direction", "up") == "down"
    vals = {
        cm.T: tp["count"],
        cm.C: r["cells"]["count"],
        cm.MR: rules.max_rank,
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
        cm.DOM: int(f["present"] and not two and not f["only complete pile moves"] and not down),
        cm.NCARDS: rules.n_cards,
        cm.SYM: int(dtype != 1),
        cm.FDOWN: int(down),
        # hole games without foundations or building: suits never matter (exact symmetry)
        cm.SUITSYM: int(
            r["hole"]["present"] and not f["present"] and tp["build policy"] == "no-build"
        ),
        cm.SSIZE: st["size"],
        cm.GPLACE: int(tp.get("built group placement", "build-policy") == "group-policy"),
        cm.RPRUNE: 1,
        # stock dominance (keys.stock_dominated): a draw-k stock (k > 1) with unlimited redeals
        # (not where a space fills itself from the waste or stock: that reads the waste's top)
        cm.SDOM: int(
            dtype == 0
            and st["deal count"] > 1
            and rules.redeals < 0
            and st["size"] > 0
            and tp["spaces policy"] not in WASTE_FILLED_SPACES
        ),
        # the deadlock test (a proof that a position is lost) holds where a card leaves its
        # pile only for a foundation (one deck, aces up) or a tableau card: no cells, no hole,
        # and only kings (or nothing) fill spaces
        cm.DEADLOCK: int(
            f["present"]
            and not f["only complete pile moves"]
            and not two
            and not down
            and r["cells"]["count"] == 0
            and not r["hole"]["present"]
            and tp["spaces policy"] in ("kings", "no-build")
            and tp["build policy"] != "no-build"
        ),
        # a search hint from the rules (tableau piles.search order): "shortest-pile-first"
        # tries moves off and onto the shortest piles first, and the largest groups first
        cm.ORDER: _orders(tp)[0],
        # a stock card goes onto the tableau only with a card put onto it next (dfs.expand):
        # every stock card can always be played (a waste stock with unlimited redeals; the
        # core also needs a deal count of 1), every card must reach a foundation, and cards
        # come only from the tableau, the stock and the foundations (no cells, no reserve)
        cm.WPAIR: int(
            dtype == 0
            and st["size"] > 0
            and rules.redeals < 0
            and f["present"]
            and not f["only complete pile moves"]
            and not r["hole"]["present"]
            and r["cells"]["count"] == 0
            and r["reserve"]["size"] == 0
            and tp["spaces policy"] in ("kings", "any", "no-build")
        ),
    }
    vals.update(_row_cfg(r))
    object.__setattr__(rules, "_cfg_cache", vals)  # Rules is frozen; its data never changes
    return vals


def compile_rules(rules: Rules, d: Deal) -> tuple[np.ndarray, np.ndarray]:
    """(cfg int64[NCFG], initial state int8[SSIZE]) for the compiled core."""
    vals = dict(_rules_cfg(rules))
    if vals[cm.FAMILY]:
        return _compile_rows(vals, d)
    nt = vals[cm.T]
    nc = vals[cm.C]
    mr = vals[cm.MR]
    nr = len(d.reserve)
    nf = len(d.foundations)
    extra_t = (len(d.stock) // max(nt, 1) + 1) if vals[cm.DTYPE] == 1 else 0
    cap = max(
        max((len(p) for p in d.tableau), default=0) + mr * rules.decks + extra_t,
        len(d.stock) + len(d.waste),
        sum(len(p) for p in d.reserve),
        1,
    )
    cap = min(cap, vals[cm.NCARDS] + 1)
    np_ = nt + nr + 2
    cfg = np.zeros(cm.NCFG, np.int64)
    vals.update({cm.R: nr, cm.NF: nf, cm.BASE: d.base, cm.CAP: cap, cm.NP: np_})
    if d.base != 1 or nf != 4:
        vals[cm.DEADLOCK] = 0  # the test assumes four foundations built up from the ace
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


def relaxation_cfg(cfg: np.ndarray) -> np.ndarray:
    """The ``cfg`` of the draw-one relaxation of a draw-k game: the same deal with the stock
    dealt one card at a time (a game with every move of the real one and more)."""
    other = cfg.copy()
    other[cm.DCOUNT] = 1
    other[cm.SDOM] = 0  # the stock dominance holds for draw-k stocks, k > 1
    return other


def _compile_rows(vals: dict[int, int], d: Deal) -> tuple[np.ndarray, np.ndarray]:
    """(cfg, state) of an Accordion or Gaps deal (layouts in :mod:`._core.rows`)."""
    if vals[cm.FAMILY] == 1:
        flat = [len(d.accordion), *d.accordion]
    else:
        cols = {len(row) for row in d.sequences}
        if len(d.sequences) != vals[cm.GROWS] or len(cols) != 1:
            raise ValueError(
                f"deal field 'sequences': expected {vals[cm.GROWS]} rows of one length, got "
                f"rows of lengths {[len(row) for row in d.sequences]}"
            )
        vals[cm.GCOLS] = cols.pop()
        flat = [c for row in d.sequences for c in row]
    cfg = np.zeros(cm.NCFG, np.int64)
    cfg[list(vals)] = list(vals.values())
    return cfg, np.array(flat, np.int8)


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


#: For each compiled move kind but the stock moves: (src, dst, keeps its card count, keeps b).
_KIND_ROW = {
    kind: (src, dst, kind in (cm.K_T2T, cm.K_SPIDER), dst in ("t", "c"))
    for kind, (src, dst) in _KIND_TO_MOVE.items()
}


def _to_moves(rows: list[list[int]], rules: Rules) -> list[Move]:
    """The engine's :class:`Move` for each compiled move row ``[kind, a, b, n, steps, ...]``."""
    deal_to = "h" if rules["stock"]["deal type"] == "hole" else "-"
    waste_dst = (("f", 0), ("t", None), ("c", None))
    k_w, k_deal, table = cm.K_W, cm.K_DEAL, _KIND_ROW
    new = tuple.__new__  # (a Move without NamedTuple's slower constructor)
    out = []
    for kind, a, b, n, steps, *_ in rows:
        if kind == cm.K_ACC or kind == cm.K_GAP:
            row = "a" if kind == cm.K_ACC else "g"
            out.append(new(Move, (row, a, 1, row, b)))
        elif kind == k_w:
            dst, di = waste_dst[n]
            out.append(new(Move, ("w", steps, 1, dst, b if di is None else di)))
        elif kind == k_deal:
            out.append(new(Move, ("s", 0, 1, deal_to, 0)))
        else:
            src, dst, many, keep_b = table[kind]
            out.append(new(Move, (src, a, n if many else 1, dst, b if keep_b else 0)))
    return out


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
    memory_limit: int = 2048 * 2**20,
    max_depth: int = 2_000_000,
    streamline: bool = True,
) -> Result:
    """Decide a deal: depth-first search with a transposition table (compiled with numba).

    ``deal`` is a :class:`Deal` or a seed (dealt with :func:`solvitaire.deal`); ``timeout`` in
    seconds of search (numba's one-time compilation on a process's first solve, tens of seconds
    with an empty on-disk cache, is not counted); ``max_states`` bounds nodes searched
    (reported as TIMEOUT when hit);
    ``memory_limit`` in bytes (default 2 GiB) bounds the transposition tables (16 bytes per
    state) and DFS stacks, split between the searches of several move orders (a streamliner
    gets half the share of an exact search).
    Every SOLVED result is replayed by the independent engine before it is returned.
    Section 2 of the Solvitaire paper (Blake & Gent, arXiv:1906.12314) describes the search.

    ``streamline``: in games that deal the stock to every pile, one more search runs in
    alternation with the exact one(s), treating the piles as interchangeable even while the
    stock holds cards (a streamliner: it may miss solutions, like the paper's section 6
    streamliners); a solution it finds is real (and replayed), and when it exhausts its
    search it just stops (the exact searches go on with its memory). So the answer never
    depends on the streamliner. Rules with ``tableau piles.colour streamliner`` (Klondike)
    add another such search, whose key reads only each card's rank and colour.
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
    stream = streamline and st["deal type"] == "tableau piles" and st["size"] > 0
    return _search(deal, rules, timeout, max_states, memory_limit, max_depth, stream)


def _search(deal, rules, timeout, max_states, memory_limit, max_depth, streamliner) -> Result:
    """The searches of :func:`solve`: one per move order of ``tableau piles.search order``
    (``both`` or a list: they run in alternation and the first to decide the deal answers,
    see :mod:`._driver`), and with ``streamliner`` one more, last, that treats the tableau
    piles as interchangeable even while the stock holds cards (last pile first); it may miss
    solutions, so only a solution of it answers."""
    cfg, S0 = compile_rules(rules, deal)
    cfgs = [cfg]
    for code in _orders(rules.data["tableau piles"])[1:]:
        other = cfg.copy()
        other[cm.ORDER] = code
        cfgs.append(other)
    decisive = [True] * len(cfgs)
    cap = rules.data["tableau piles"].get("search depth limit", 0)
    if cap:
        # a depth-limited search (no move below depth ``cap``, then 4x deeper on each restart):
        # a DFS that runs down a path millions of moves deep misses short solutions beside it
        other = cfg.copy()
        other[cm.DCAP] = cap
        cfgs.append(other)
        decisive.append(False)
    if rules.data["tableau piles"].get("colour streamliner"):
        # one more search whose key reads only the rank and colour of each card (keys._suit_mask):
        # it merges positions that differ by swapping two cards of one rank and colour, so it
        # may miss solutions, but it often finds one in far fewer states (Klondike)
        other = cfg.copy()
        other[cm.SUITSYM] = 2
        cfgs.append(other)
        decisive.append(False)
    relaxed = [False] * len(cfgs)
    if rules.data["stock"].get("draw-one relaxation"):
        # one more search of the same deal with the stock dealt one card at a time: every
        # draw of k cards is k draws of one (same waste, same redeals), so that game has all
        # the moves of this one and more; a deal it proves lost is lost (Klondike: most
        # unsolvable deals that take the exact search longest are lost in draw 1 too)
        cfgs.append(relaxation_cfg(cfg))
        decisive.append(False)
        relaxed.append(True)
    if streamliner:
        other = cfg.copy()
        other[cm.SYM] = 1
        other[cm.ORDER] = SEARCH_ORDERS["last-pile-first"]
        cfgs.append(other)
        decisive.append(False)
    relaxed += [False] * (len(cfgs) - len(relaxed))
    # the arrangement relaxation (Klondike): a game that forgets where the face-up tableau
    # cards lie; its lost game proves the deal lost (see _core.arrange)
    arr = arrangement_search(rules, deal, cfg, memory_limit)
    outcome, search, stats = _driver.run(
        cfgs,
        S0,
        _Z,
        timeout=timeout,
        max_states=max_states,
        memory_limit=memory_limit,
        max_depth=max_depth,
        decisive=decisive,
        relaxed=relaxed,
        extra=[arr] if arr is not None else None,
        head_start=rules.data["tableau piles"].get("search head start"),
    )
    if outcome == "timeout":
        return Result(Status.TIMEOUT, stats=stats)
    if outcome == "memory":
        return Result(Status.MEMORY_LIMIT, stats=stats)
    if outcome == "unsolvable":
        return Result(Status.UNSOLVABLE, stats=stats)
    if arr is not None and search is arr:  # (the relaxation's winning line, made concrete)
        moves = arr.moves
        stats["path_length"] = len(moves)
    else:
        stats["path_length"] = int(search.ctl[cs.D_DEPTH])
        rows = search.solution_rows(SHORTCUT_MIN_DEPTH)
        moves = _to_moves(rows.tolist(), rules)
    try:
        verify_moves(deal, rules, moves, notation=False)
    except ValueError as e:  # a solver bug: never report an unverified solution
        raise RuntimeError(f"internal error: the solver's solution failed verification: {e}") from e
    stats["solution_length"] = len(moves)
    return Result(Status.SOLVED, moves, stats, _source=(deal, rules, moves))
