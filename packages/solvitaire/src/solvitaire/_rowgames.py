"""The independent engine's row games: Accordion and Gaps (plain Python, no compiled code).

``GameState(deal, rules)`` returns one of these for rules with an ``accordion`` or
``sequences`` section. Their moves are :class:`~solvitaire._engine.Move` tuples:

* Accordion: ``Move("a", i, 1, "a", j)`` puts pile ``i`` (0-based, counted in the current
  row, left to right) onto pile ``j``; it is legal when ``j = i - d`` for a move ``"Ld"`` of
  the rules (``i + d`` for ``"Rd"``) and the two top cards match by one of the rules' build
  policies (same suit, same rank, red-black = different colours, any suit). Won when one pile
  is left.
* Gaps: ``Move("g", q, 1, "g", g)`` moves the card in cell ``q`` into the gap at cell ``g``
  (cells numbered row by row, ``row * columns + column``). Building left (``direction``
  ``"L"``): a gap takes the card one rank above its left neighbour by the sequence build
  policy, and a gap in the first column takes any 2 (with ``fixed suit``: row r takes the 2 of
  suit r, in the order C, H, S, D). Building right (``"R"``) mirrors it: one rank below the
  right neighbour, kings into the last column. ``"LR"``: either. Won when every row holds
  2 .. max rank, built by the policy from its anchored end (the first column building left,
  the last building right).
"""

from __future__ import annotations

from itertools import pairwise

from ._cards import card_str, colour, rank, suit
from ._deal import Deal
from ._engine import GameState, Move, _builds
from ._rules import Rules

__all__ = ["AccordionState", "GapsState"]


class _RowState(GameState):
    """What the two row games share: no piles of the pile games, copy by value."""

    def __init__(self, rules: Rules) -> None:  # (GameState.__new__ picked the subclass)
        self.rules = rules
        self.mr = rules.max_rank

    def is_legal(self, m: Move) -> bool:
        return m in self.legal_moves()

    def apply(self, m: Move, check: bool = True) -> None:
        if check and not self.is_legal(m):
            raise ValueError(f"illegal move {m} ({self.describe(m)})")
        self._make(m)

    def _make(self, m: Move) -> None:
        raise NotImplementedError


class AccordionState(_RowState):
    """An Accordion position: the row of piles (each bottom card first)."""

    def __init__(self, deal: Deal, rules: Rules) -> None:
        super().__init__(rules)
        acc = rules.data["accordion"]
        self.row = [[c] for c in deal.accordion]
        self._reach = [(-int(m[1:]) if m[0] == "L" else int(m[1:])) for m in acc["moves"]]
        self._policies = list(acc["build policies"])

    def copy(self) -> AccordionState:
        new = object.__new__(AccordionState)
        new.__dict__.update(self.__dict__)
        new.row = [list(p) for p in self.row]
        return new

    def key(self) -> tuple:
        return tuple(map(tuple, self.row))

    def _match(self, a: int, b: int) -> bool:
        for p in self._policies:
            if p == "any-suit":
                return True
            if p == "same-suit" and suit(a) == suit(b):
                return True
            if p == "same-rank" and rank(a) == rank(b):
                return True
            if p == "red-black" and colour(a) != colour(b):
                return True
        return False

    def legal_moves(self, like: Move | None = None) -> list[Move]:
        out = []
        n = len(self.row)
        for i in range(n):
            for d in self._reach:
                j = i + d
                if 0 <= j < n and self._match(self.row[j][-1], self.row[i][-1]):
                    m = Move("a", i, 1, "a", j)
                    if m not in out:
                        out.append(m)
        return out

    def _make(self, m: Move) -> None:
        self.row[m.di].extend(self.row[m.si])  # (before the row closes up)
        del self.row[m.si]

    def won(self) -> bool:
        return len(self.row) == 1

    def card_of(self, m: Move) -> int:
        return self.row[m.si][-1] if 0 <= m.si < len(self.row) else 0

    def describe(self, m: Move) -> str:
        d = m.di - m.si
        way = f"{-d} left" if d < 0 else f"{d} right"
        onto = card_str(self.row[m.di][-1]) if 0 <= m.di < len(self.row) else "?"
        return (
            f"{card_str(self.card_of(m))}: pile {m.si + 1} -> pile {m.di + 1} ({way}, onto {onto})"
        )

    def board(self) -> str:
        return f"{len(self.row)} piles: " + " ".join(card_str(p[-1]) for p in self.row)


class GapsState(_RowState):
    """A Gaps position: the grid of cells row by row (0 = a gap)."""

    def __init__(self, deal: Deal, rules: Rules) -> None:
        super().__init__(rules)
        seq = rules.data["sequences"]
        self.cols = len(deal.sequences[0]) if deal.sequences else 0
        self.grid = [c for row in deal.sequences for c in row]
        self._dir = seq["direction"]
        self._policy = seq["build policy"]
        self._fixed = seq["fixed suit"]

    def copy(self) -> GapsState:
        new = object.__new__(GapsState)
        new.__dict__.update(self.__dict__)
        new.grid = list(self.grid)
        return new

    def key(self) -> tuple:
        return tuple(self.grid)

    def _takes(self, g: int, x: int) -> bool:
        r, c = divmod(g, self.cols)
        fixed_ok = not self._fixed or suit(x) == r % 4
        if "L" in self._dir:
            if c == 0 and rank(x) == 2 and fixed_ok:
                return True
            if (
                c > 0
                and self.grid[g - 1]
                and _builds(self._policy, self.grid[g - 1], x, self.mr, 1)
            ):
                return True
        if "R" in self._dir:
            if c == self.cols - 1 and rank(x) == self.mr and fixed_ok:
                return True
            if (
                c < self.cols - 1
                and self.grid[g + 1]
                and _builds(self._policy, x, self.grid[g + 1], self.mr, 1)
            ):
                return True
        return False

    def legal_moves(self, like: Move | None = None) -> list[Move]:
        gaps = [g for g, x in enumerate(self.grid) if not x]
        return [
            Move("g", q, 1, "g", g)
            for g in gaps
            for q, x in enumerate(self.grid)
            if x and self._takes(g, x)
        ]

    def _make(self, m: Move) -> None:
        self.grid[m.di] = self.grid[m.si]
        self.grid[m.si] = 0

    def _row_done(self, r: int, from_left: bool) -> bool:
        row = self.grid[r * self.cols : (r + 1) * self.cols]
        run = row[: self.mr - 1] if from_left else row[self.cols - self.mr + 1 :]
        if [rank(x) if x else 0 for x in run] != list(range(2, self.mr + 1)):
            return False
        if not all(_builds(self._policy, a, b, self.mr, 1) for a, b in pairwise(run)):
            return False
        end = run[0] if from_left else run[-1]
        return not self._fixed or suit(end) == r % 4

    def won(self) -> bool:
        rows = range(len(self.grid) // self.cols) if self.cols else range(0)
        return all(
            ("L" in self._dir and self._row_done(r, True))
            or ("R" in self._dir and self._row_done(r, False))
            for r in rows
        )

    def card_of(self, m: Move) -> int:
        return self.grid[m.si] if 0 <= m.si < len(self.grid) else 0

    def describe(self, m: Move) -> str:
        (r1, c1), (r2, c2) = divmod(m.si, self.cols), divmod(m.di, self.cols)
        return (
            f"{card_str(self.card_of(m))}: row {r1 + 1} col {c1 + 1} -> row {r2 + 1} col {c2 + 1}"
        )

    def board(self) -> str:
        rows = []
        for r in range(len(self.grid) // max(self.cols, 1)):
            cells = self.grid[r * self.cols : (r + 1) * self.cols]
            rows.append(f"row {r + 1}: " + " ".join(card_str(x) or "--" for x in cells))
        return "\n".join(rows)
