"""An independent, plain-Python rules engine: legal moves, applying a move, the win test.

It shares no code with the compiled search. It is used to replay and verify every solution,
and (through :func:`brute_force`) as an exhaustive oracle with no dominances and no symmetry.

Moves are :class:`Move` tuples ``(src, si, n, dst, di)``:

* ``src``: ``"t"`` tableau pile, ``"c"`` cell, ``"r"`` reserve pile, ``"f"`` foundation,
  ``"w"`` waste after ``si`` stock steps (a compound "k+" move), ``"s"`` the stock itself
  (deal to every tableau pile, or to the hole);
* ``n``: number of cards moved (built groups);
* ``dst``: ``"t"``, ``"c"``, ``"f"``, ``"h"`` (hole) or ``"-"`` (stock deal).

A stock *step* deals ``deal count`` cards from the stock to the waste, or, when the stock is
empty and a redeal is left, turns the waste over to form a new stock.
"""

from __future__ import annotations

from typing import NamedTuple

from ._cards import card_str, colour, rank, suit
from ._deal import Deal
from ._rules import Rules

__all__ = ["GameState", "Move", "brute_force", "move_str"]


class Move(NamedTuple):
    src: str
    si: int
    n: int
    dst: str
    di: int


_NAMES = {"t": "pile", "c": "cell", "r": "reserve", "f": "foundation", "h": "hole", "w": "waste"}


def move_str(m: Move, card_text: str = "") -> str:
    """Readable notation, e.g. ``"3C: pile 2 -> pile 5"``, ``"AH: waste(+2 steps) -> foundation"``

    Piles and cells are numbered from 1 in the text (0-based in :class:`Move`)."""
    what = f"{card_text}" + (f" (+{m.n - 1} above)" if m.n > 1 else "")
    if m.src == "s":
        return "deal stock" + (" to hole" if m.dst == "h" else " to every pile")
    if m.src == "w":
        src = f"waste(+{m.si} steps)" if m.si else "waste"
    else:
        src = f"{_NAMES[m.src]} {m.si + 1}"
    dst = _NAMES[m.dst] if m.dst in "fh" else f"{_NAMES[m.dst]} {m.di + 1}"
    return f"{what}: {src} -> {dst}".strip()


def _builds(policy: str, lower: int, upper: int, mr: int, base: int) -> bool:
    # ranks count from the foundation base (building wraps round the corner when base != A)
    if (rank(lower) - base) % mr != (rank(upper) - base) % mr - 1:
        return False
    if policy == "any-suit":
        return True
    if policy == "red-black":
        return colour(lower) != colour(upper)
    if policy == "same-suit":
        return suit(lower) == suit(upper)
    return False


class GameState:
    """A mutable game position under ``rules``; :meth:`legal_moves`, :meth:`apply`, :meth:`won`."""

    def __new__(cls, deal: Deal | None = None, rules: Rules | None = None) -> GameState:
        # the row games (Accordion, Gaps) have states of their own (see _rowgames)
        if cls is GameState and rules is not None:
            from ._rowgames import AccordionState, GapsState

            if rules.data["accordion"]["size"]:
                return object.__new__(AccordionState)
            if rules.data["sequences"]["count"]:
                return object.__new__(GapsState)
        return object.__new__(cls)

    def __init__(self, deal: Deal, rules: Rules) -> None:
        r = rules.data
        self.rules = rules
        self.mr = rules.max_rank
        self.base = deal.base
        self.tab = [list(p) for p in deal.tableau]
        self.down = list(deal.down)
        down = r["foundations"].get("direction", "up") == "down"
        self.found = [
            0 if not t else ((self.base - rank(t)) if down else (rank(t) - self.base)) % self.mr + 1
            for t in deal.foundations
        ]
        self.cells = list(deal.cells)
        self.stock = list(deal.stock)
        self.waste = list(deal.waste)
        self.reserve = [list(p) for p in deal.reserve]
        self.hole = deal.hole
        self.passes = 0
        # rule fields read on every move, looked up once
        t, f = r["tableau piles"], r["foundations"]
        self._build = t["build policy"]
        gp = t["move built group policy"]
        grp = self._build if gp == "same-as-build" else gp
        self._group_place = grp if t.get("built group placement") == "group-policy" else None
        self._spaces = t["spaces policy"]
        self._auto = self._spaces.startswith("auto")
        self._to_found = f["present"] and not f["only complete pile moves"]
        self._fdown = f.get("direction", "up") == "down"
        self._hole = r["hole"]["present"]
        self._normalise()

    def copy(self) -> GameState:
        new = object.__new__(GameState)
        new.__dict__.update(self.__dict__)
        new.tab = [list(p) for p in self.tab]
        new.down = list(self.down)
        new.found = list(self.found)
        new.cells = list(self.cells)
        new.stock = list(self.stock)
        new.waste = list(self.waste)
        new.reserve = [list(p) for p in self.reserve]
        return new

    def key(self) -> tuple:
        return (
            tuple(map(tuple, self.tab)),
            tuple(self.down),
            tuple(self.found),
            tuple(self.cells),
            tuple(self.stock),
            tuple(self.waste),
            tuple(map(tuple, self.reserve)),
            self.hole,
            self.passes,
        )

    # -- rule helpers --------------------------------------------------------------------------
    def _found_next(self, f: int) -> int:
        """Rank that goes next on foundation ``f`` (0 when complete)."""
        n = self.found[f]
        if n >= self.mr:
            return 0
        if self._fdown:
            return (self.base - 1 - n) % self.mr + 1
        return (self.base - 1 + n) % self.mr + 1

    def _found_target(self, c: int) -> int:
        if not self._to_found:
            return -1
        found, mr, r = self.found, self.mr, c >> 2
        for f in range(c & 3, len(found), 4):  # the foundations of c's suit
            n = found[f]  # (the rank that goes next, as in _found_next)
            if n < mr:
                nxt = (self.base - 1 - n) if self._fdown else (self.base - 1 + n)
                if nxt % mr + 1 == r:
                    return f
        return -1

    def _hole_ok(self, c: int) -> bool:
        if not self._hole:
            return False
        d = abs(rank(c) - rank(self.hole))
        return d == 1 or (self.rules.data["hole"]["build loops"] and d == self.mr - 1)

    def _space_ok(self, c: int) -> bool:
        pol = self._spaces
        if pol == "no-build" or self._build == "no-build":
            return False
        if pol == "kings":
            return (rank(c) - self.base) % self.mr == self.mr - 1
        return True

    def _can_place(self, c: int, j: int, n: int = 1) -> bool:
        """Whether card ``c`` (the bottom of ``n`` moved cards) may go onto pile ``j``."""
        p = self.tab[j]
        if not p:
            return self._space_ok(c)
        pol = self._group_place if n > 1 and self._group_place else self._build
        return _builds(pol, c, p[-1], self.mr, self.base)

    def _group_sizes(self, i: int) -> list[int]:
        t = self.rules.data["tableau piles"]
        p, d = self.tab[i], self.down[i]
        if not p:
            return []
        pol = t["move built group policy"]
        pol = t["build policy"] if pol == "same-as-build" else pol
        run = 1
        while run < len(p) - d and _builds(pol, p[-run], p[-run - 1], self.mr, self.base):
            run += 1
        mode = t["move built group"]
        if mode == "no":
            return [1]
        if mode == "whole-pile":
            return [1] + ([len(p)] if run == len(p) and len(p) > 1 else [])
        if mode == "maximal-group":
            return sorted({1, run})
        return list(range(1, run + 1))  # "yes"; PIB is a restriction of "yes"

    def _reserve_tops(self) -> list[int]:
        return [i for i, p in enumerate(self.reserve) if p]

    def _stock_configs(self) -> list[tuple[int, GameState]]:
        """Every (steps, state) reachable by stock steps alone, with a non-empty waste."""
        out = []
        st = self
        seen = set()
        steps = 0
        while True:
            if st.waste:
                out.append((steps, st))
            sig = (len(st.waste), st.passes if self.rules.redeals >= 0 else 0)
            if sig in seen:
                break
            seen.add(sig)
            nxt = st.copy()
            if not nxt._step():
                break
            st = nxt
            steps += 1
        return out

    def _step(self) -> bool:
        k = self.rules.data["stock"]["deal count"]
        if self.stock:
            for _ in range(min(k, len(self.stock))):
                self.waste.append(self.stock.pop())
            return True
        red = self.rules.redeals
        if self.waste and (red < 0 or self.passes < red):
            self.stock = self.waste[::-1]
            self.waste = []
            self.passes += 1
            return True
        return False

    # -- moves ---------------------------------------------------------------------------------
    def legal_moves(self, like: Move | None = None) -> list[Move]:
        """Every legal move; with ``like``, only those from the same source (faster checks)."""
        r = self.rules.data
        mv: list[Move] = []
        T = len(self.tab)
        has_f = r["foundations"]["present"]
        src = like.src if like is not None else None
        targets = [like.di] if like is not None and like.dst == "t" else range(T)
        for i in range(T):
            if src is not None and (src != "t" or i != like.si):
                continue
            p = self.tab[i]
            if not p:
                continue
            c = p[-1]
            if self._found_target(c) >= 0:
                mv.append(Move("t", i, 1, "f", 0))
            if self._hole_ok(c):
                mv.append(Move("t", i, 1, "h", 0))
            if 0 in self.cells:
                mv.append(Move("t", i, 1, "c", self.cells.index(0)))
            for n in self._group_sizes(i):
                if like is not None and n != like.n:
                    continue
                for j in targets:
                    if j != i and self._can_place(p[-n], j, n):
                        mv.append(Move("t", i, n, "t", j))
            if (
                has_f
                and r["foundations"]["only complete pile moves"]
                and len(p) - self.down[i] >= self.mr
            ):
                run = p[-self.mr :]
                if all(
                    rank(run[-1 - x]) == x + 1 and suit(run[-1 - x]) == suit(run[-1])
                    for x in range(self.mr)
                ):
                    mv.append(Move("t", i, self.mr, "f", 0))
        for ci, c in enumerate(self.cells):
            if not c or (src is not None and (src != "c" or ci != like.si)):
                continue
            if self._found_target(c) >= 0:
                mv.append(Move("c", ci, 1, "f", 0))
            if self._hole_ok(c):
                mv.append(Move("c", ci, 1, "h", 0))
            for j in targets:
                if self._can_place(c, j):
                    mv.append(Move("c", ci, 1, "t", j))
        for ri in self._reserve_tops():
            if src is not None and (src != "r" or ri != like.si):
                continue
            c = self.reserve[ri][-1]
            if self._found_target(c) >= 0:
                mv.append(Move("r", ri, 1, "f", 0))
            if self._hole_ok(c):
                mv.append(Move("r", ri, 1, "h", 0))
            if 0 in self.cells:
                mv.append(Move("r", ri, 1, "c", self.cells.index(0)))
            for j in targets:
                if self._can_place(c, j):
                    mv.append(Move("r", ri, 1, "t", j))
        if has_f and r["foundations"]["removable"] and src in (None, "f"):
            for f in range(len(self.found)):
                if self.found[f]:
                    c = self._found_top(f)
                    for j in targets:
                        if self._can_place(c, j):
                            mv.append(Move("f", f, 1, "t", j))
        dt = r["stock"]["deal type"]
        if dt == "waste" and src in (None, "w"):
            configs = self._stock_config(like.si) if src == "w" else self._stock_configs()
            for steps, st in configs:
                c = st.waste[-1]
                if st._found_target(c) >= 0:
                    mv.append(Move("w", steps, 1, "f", 0))
                for j in targets:
                    if st._can_place(c, j):
                        mv.append(Move("w", steps, 1, "t", j))
                if 0 in st.cells:
                    mv.append(Move("w", steps, 1, "c", st.cells.index(0)))
        elif self.stock and src in (None, "s"):
            mv.append(Move("s", 0, 1, "h" if dt == "hole" else "-", 0))
        return mv

    def _stock_config(self, steps: int) -> list[tuple[int, GameState]]:
        st = self.copy()
        for _ in range(steps):
            if not st._step():
                return []
        return [(steps, st)] if st.waste else []

    def _found_top(self, f: int) -> int:
        n = self.found[f]
        if self.rules.data["foundations"].get("direction", "up") == "down":
            r = (self.base - n) % self.mr + 1
        else:
            r = (self.base + n - 2) % self.mr + 1
        return r * 4 + f % 4

    def is_legal(self, m: Move) -> bool:
        """Whether ``m`` is legal here (the same rules as :meth:`legal_moves`, checked directly)."""
        r = self.rules.data
        T = len(self.tab)
        if m.src in ("w", "s"):
            return m in self.legal_moves(like=m)
        if m.src == "t":
            if not 0 <= m.si < T:
                return False
            p = self.tab[m.si]
            if not 1 <= m.n <= len(p) - self.down[m.si]:
                return False
            if m.dst == "f" and m.n > 1:
                return m in self.legal_moves(like=m)  # a complete suit (Spider)
            if m.n > 1 and (m.dst != "t" or m.n not in self._group_sizes(m.si)):
                return False
            c = p[-m.n]
        elif m.src == "c":
            if not 0 <= m.si < len(self.cells) or not self.cells[m.si] or m.dst == "c":
                return False
            c = self.cells[m.si]
        elif m.src == "r":
            if not 0 <= m.si < len(self.reserve) or not self.reserve[m.si]:
                return False
            c = self.reserve[m.si][-1]
        elif m.src == "f":
            f = r["foundations"]
            if not (f["present"] and f["removable"]) or not 0 <= m.si < len(self.found):
                return False
            if not self.found[m.si] or m.dst != "t":
                return False
            c = self._found_top(m.si)
        else:
            return False
        if m.n != 1 and m.src != "t":
            return False
        if m.dst == "t":
            if not 0 <= m.di < T or (m.src == "t" and m.di == m.si):
                return False
            return self._can_place(c, m.di, m.n)
        if m.dst == "c":
            return 0 <= m.di < len(self.cells) and not self.cells[m.di] and m.src in "tr"
        if m.dst == "f":
            return self._found_target(c) >= 0
        if m.dst == "h":
            return self._hole_ok(c)
        return False

    def apply(self, m: Move, check: bool = True) -> None:
        """Apply a move in place; raises ``ValueError`` when it is not legal here."""
        src, si, n, dst, di = m
        if src == "t" and n == 1 and (dst == "f" or dst == "t"):
            # the commonest moves (one card off a tableau pile), checked and made directly
            tab = self.tab
            p = tab[si] if 0 <= si < len(tab) else None
            if p is not None and len(p) > self.down[si]:
                c = p[-1]
                if dst == "f":
                    f = self._found_target(c)
                    if f >= 0:
                        p.pop()
                        self.found[f] += 1
                        self._normalise(si)
                        return
                elif 0 <= di < len(tab) and di != si and self._can_place(c, di, 1):
                    p.pop()
                    tab[di].append(c)
                    self._normalise(si)
                    return
            if check:  # not legal (the general check below says why)
                raise ValueError(f"illegal move {m} ({move_str(m)})")
        if check and not self.is_legal(m):
            raise ValueError(f"illegal move {m} ({move_str(m)})")
        if m.src == "w":
            for _ in range(m.si):
                self._step()
            cards = [self.waste.pop()]
        elif m.src == "s":
            if m.dst == "h":
                self.hole = self.stock.pop()
            else:
                for j in range(len(self.tab)):
                    if self.stock:
                        self.tab[j].append(self.stock.pop())
            self._normalise(-1)  # no tableau pile lost cards
            return
        elif m.src == "t":
            p = self.tab[m.si]
            cards = p[-m.n :]
            del p[-m.n :]
        elif m.src == "c":
            cards = [self.cells[m.si]]
            self.cells[m.si] = 0
        elif m.src == "r":
            cards = [self.reserve[m.si].pop()]
        else:  # foundation
            cards = [self._found_top(m.si)]
            self.found[m.si] -= 1
        if m.dst == "t":
            self.tab[m.di].extend(cards)
        elif m.dst == "c":
            self.cells[m.di] = cards[0]
        elif m.dst == "h":
            self.hole = cards[0]
        elif m.n > 1:  # complete suit to a foundation
            f = next(
                f for f in range(len(self.found)) if self.found[f] == 0 and f % 4 == suit(cards[0])
            )
            self.found[f] = self.mr
        else:
            self.found[self._found_target(cards[0])] += 1
        self._normalise(m.si if m.src == "t" else -1)

    def _normalise(self, touched: int | None = None) -> None:
        """Auto-fill spaces and turn up each pile's top card; ``touched``: the only tableau
        pile that lost cards (-1: none), or None to check every pile."""
        pol = self._spaces
        if self._auto:
            touched = None
            for p in self.tab:
                if p:
                    continue
                res = [q for q in self.reserve if q]
                if pol.startswith("auto-reserve") and res:
                    p.append(res[0].pop())
                elif pol == "auto-reserve-then-waste" and self.waste:
                    p.append(self.waste.pop())
                elif pol == "auto-waste-then-stock" and (self.waste or self.stock):
                    p.append((self.waste or self.stock).pop())
        for j in range(len(self.tab)) if touched is None else (touched,) * (touched >= 0):
            n = len(self.tab[j])
            if self.down[j] >= n:
                self.down[j] = max(n - 1, 0)

    def won(self) -> bool:
        if self.rules.data["foundations"]["present"]:
            return all(n == self.mr for n in self.found)
        return not (
            any(self.tab) or any(self.cells) or self.stock or self.waste or any(self.reserve)
        )

    def card_of(self, m: Move) -> int:
        """The (bottom) card a move carries."""
        if m.src == "t":
            return self.tab[m.si][-m.n]
        if m.src == "c":
            return self.cells[m.si]
        if m.src == "r":
            return self.reserve[m.si][-1]
        if m.src == "f":
            return self._found_top(m.si)
        if m.src == "s":
            return self.stock[-1] if self.stock else 0
        st = self.copy()
        for _ in range(m.si):
            st._step()
        return st.waste[-1]

    def describe(self, m: Move) -> str:
        return move_str(m, card_str(self.card_of(m)))

    def board(self) -> str:
        """A small text picture of the position (face-down cards as ``##``)."""
        lines = []
        if self.found:
            lines.append(
                "foundations: "
                + " ".join(
                    card_str(self._found_top(f)) if n else "--" for f, n in enumerate(self.found)
                )
            )
        if self.hole:
            lines.append(f"hole: {card_str(self.hole)}")
        if self.cells:
            lines.append("cells: " + " ".join(card_str(c) or "--" for c in self.cells))
        if self.reserve:
            lines.append("reserve: " + " | ".join(" ".join(map(card_str, p)) for p in self.reserve))
        if self.stock or self.waste:
            lines.append(
                f"stock: {len(self.stock)} cards, waste: "
                + " ".join(card_str(c) for c in self.waste[-3:])
            )
        for j, p in enumerate(self.tab):
            cs = ["##" if i < self.down[j] else card_str(c) for i, c in enumerate(p)]
            lines.append(f"pile {j + 1}: " + " ".join(cs))
        return "\n".join(lines)


def brute_force(deal: Deal, rules: Rules, max_states: int = 2_000_000) -> bool | None:
    """Exhaustive DFS over full positions (no dominances, no symmetry). ``None`` if over budget."""
    start = GameState(deal, rules)
    seen = {start.key()}
    stack = [start]
    while stack:
        st = stack.pop()
        if st.won():
            return True
        for m in st.legal_moves():
            nxt = st.copy()
            nxt.apply(m, check=False)
            k = nxt.key()
            if k not in seen:
                if len(seen) >= max_states:
                    return None
                seen.add(k)
                stack.append(nxt)
    return False
