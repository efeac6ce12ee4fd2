"""Deals: the reference-compatible random deal, the :class:`Deal` container and its JSON format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ._cards import card, card_str, parse_card, rank, suit
from ._rules import Rules, load_rules

__all__ = ["MT19937", "Deal", "deal"]


class MT19937:
    """The standard 32-bit Mersenne Twister (``init_genrand`` seeding), as ``std::mt19937``.

    The words come from numpy's ``RandomState`` (the same generator and the same seeding for
    a 32-bit seed), drawn in blocks; ``tests`` check them against a plain implementation."""

    _BLOCK = 256

    def __init__(self, seed: int) -> None:
        import numpy as np

        self._rs = np.random.RandomState(seed & 0xFFFFFFFF)
        self._buf: list[int] = []
        self.i = 0

    def next32(self) -> int:
        if self.i >= len(self._buf):
            self._buf = self._rs.randint(0, 2**32, size=self._BLOCK, dtype="uint32").tolist()
            self.i = 0
        y = self._buf[self.i]
        self.i += 1
        return y

    def uniform(self, hi: int) -> int:
        """Uniform integer in [0, hi], drawn like Boost's ``uniform_int_distribution``."""
        brange = 0xFFFFFFFF
        bucket = brange // (hi + 1)
        if brange % (hi + 1) == hi:
            bucket += 1
        while True:
            x = self.next32() // bucket
            if x <= hi:
                return x


@dataclass
class Deal:
    """A deal (a starting position). Piles are lists of int cards, bottom card first.

    ``down[i]`` is the number of face-down cards at the bottom of tableau pile ``i``.
    ``foundations[i]`` is the top card of foundation ``i`` (0 when empty); foundation ``i``
    holds suit ``i % 4``. ``cells`` hold one card or 0. ``hole`` is the hole's top card or 0.
    ``base`` is the foundation base rank of this deal (1 = ace).
    """

    tableau: list[list[int]]
    down: list[int]
    foundations: list[int] = field(default_factory=list)
    cells: list[int] = field(default_factory=list)
    stock: list[int] = field(default_factory=list)
    waste: list[int] = field(default_factory=list)
    reserve: list[list[int]] = field(default_factory=list)
    hole: int = 0
    base: int = 1
    sequences: list[list[int]] = field(default_factory=list)
    accordion: list[int] = field(default_factory=list)

    def all_cards(self) -> list[int]:
        out = [c for p in self.tableau for c in p] + [c for c in self.cells if c]
        out += self.stock + self.waste + [c for p in self.reserve for c in p]
        out += [c for p in self.sequences for c in p if c] + list(self.accordion)
        return out

    # -- JSON (reference format: lower case = face down) ---------------------------------------
    def to_dict(self, rules: Rules) -> dict:
        def pile(cards: list[int], down: int = 0) -> list[str]:
            return [card_str(c).lower() if i < down else card_str(c) for i, c in enumerate(cards)]

        d: dict = {}
        if rules["tableau piles"]["count"]:
            d["tableau piles"] = [pile(p, n) for p, n in zip(self.tableau, self.down)]
        if rules["foundations"]["present"]:
            d["foundations"] = [[card_str(c)] if c else "" for c in self.foundations]
        if rules["cells"]["count"]:
            d["cells"] = [[card_str(c)] if c else "" for c in self.cells]
        if rules["stock"]["size"]:
            d["stock"] = pile(self.stock)
            if rules["stock"]["deal type"] == "waste":
                d["waste"] = pile(self.waste) if self.waste else ""
        if rules["reserve"]["size"]:
            d["reserve"] = [pile(p) for p in self.reserve]
        if rules["hole"]["present"]:
            d["hole"] = card_str(self.hole)
        if self.sequences:
            d["sequences"] = [[card_str(c) if c else "AS" for c in row] for row in self.sequences]
        if self.accordion:
            d["accordion"] = [[card_str(c)] for c in self.accordion]
        d["foundation base"] = self.base
        return d

    def to_json(self, rules: Rules) -> str:
        return json.dumps(self.to_dict(rules))

    @classmethod
    def from_dict(cls, d: dict, rules: Rules) -> Deal:
        """Read a deal in the reference's JSON format and check it against ``rules``."""
        if not isinstance(d, dict):
            raise ValueError(f"deal must be a JSON object, got {type(d).__name__}")

        def cards_of(x, where: str) -> tuple[list[int], int]:
            if x == "" or x is None:
                return [], 0
            if isinstance(x, str):
                x = [x]
            if not isinstance(x, list):
                raise ValueError(f"deal field '{where}': expected a list of cards, got {x!r}")
            out, down = [], 0
            for i, t in enumerate(x):
                try:
                    c, up = parse_card(t)
                except ValueError as e:
                    raise ValueError(f"deal field '{where}': {e}") from None
                if not up:
                    if i != down:
                        raise ValueError(
                            f"deal field '{where}': face-down card above a face-up one"
                        )
                    down += 1
                out.append(c)
            return out, down

        n_t = rules["tableau piles"]["count"]
        tab_raw = d.get("tableau piles", [])
        if not isinstance(tab_raw, list) or len(tab_raw) != n_t:
            got = len(tab_raw) if isinstance(tab_raw, list) else tab_raw
            raise ValueError(f"deal field 'tableau piles': expected {n_t} piles, got {got}")
        tab, down = [], []
        for i, p in enumerate(tab_raw):
            c, n = cards_of(p, f"tableau piles[{i}]")
            tab.append(c)
            down.append(n)
        nf = 4 * rules.decks if rules["foundations"]["present"] else 0
        f_raw = d.get("foundations", [""] * nf)
        if not isinstance(f_raw, list) or len(f_raw) != nf:
            raise ValueError(f"deal field 'foundations': expected {nf} entries, got {f_raw!r}")
        founds = []
        for i, f in enumerate(f_raw):
            c, _ = cards_of(f, f"foundations[{i}]")
            founds.append(c[-1] if c else 0)
        nc = rules["cells"]["count"]
        c_raw = d.get("cells", [""] * nc)
        if not isinstance(c_raw, list) or len(c_raw) != nc:
            raise ValueError(f"deal field 'cells': expected {nc} cells, got {c_raw!r}")
        cells = []
        for i, x in enumerate(c_raw):
            c, _ = cards_of(x, f"cells[{i}]")
            if len(c) > 1:
                raise ValueError(f"deal field 'cells[{i}]': a cell holds one card, got {x!r}")
            cells.append(c[0] if c else 0)
        stock, _ = cards_of(d.get("stock", []), "stock")
        waste, _ = cards_of(d.get("waste", []), "waste")
        reserve = [cards_of(p, f"reserve[{i}]")[0] for i, p in enumerate(d.get("reserve", []))]
        hole_c = cards_of(d.get("hole", ""), "hole")[0]
        base = d.get("foundation base")
        if base is None:
            base = rules.foundation_base
            if base is None:
                tops = [rank(c) for c in founds if c]
                base = tops[0] if tops else 1
        sequences = []
        for i, row in enumerate(d.get("sequences", []) or []):
            if not isinstance(row, list):
                raise ValueError(f"deal field 'sequences[{i}]': expected a list of cards")
            # "AS" marks a gap (the aces are out of play in Gaps)
            sequences.append(
                [0 if t == "AS" else cards_of(t, f"sequences[{i}]")[0][0] for t in row]
            )
        accordion = []  # the top card of each pile (the cards under it never play again)
        for i, p in enumerate(d.get("accordion", []) or []):
            c, _ = cards_of(p, f"accordion[{i}]")
            if not c:
                raise ValueError(f"deal field 'accordion[{i}]': an empty pile")
            accordion.append(c[-1])
        out = cls(
            tab, down, founds, cells, stock, waste, reserve, hole_c[0] if hole_c else 0, int(base),
            sequences, accordion,
        )  # fmt: skip
        out.validate(rules)
        return out

    @classmethod
    def from_json(cls, text: str | Path, rules: Rules) -> Deal:
        if isinstance(text, Path) or (isinstance(text, str) and text.strip()[:1] not in "{["):
            text = Path(text).read_text()
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"deal is not valid JSON: {e.msg} (line {e.lineno})") from None
        if isinstance(d, dict) and "deal" in d and "tableau piles" not in d:
            d = d["deal"]
        return cls.from_dict(d, rules)

    def validate(self, rules: Rules) -> None:
        """Check card counts: every card of the deck exactly once (twice for two decks)."""
        from collections import Counter

        mr = rules.max_rank
        cnt = Counter(self.all_cards())
        # cards on foundations: everything from the base up to the top card
        for i, top in enumerate(self.foundations):
            if top:
                r = self.base
                while True:
                    cnt[card(r, i % 4)] += 1
                    if r == rank(top):
                        break
                    r = r % mr + 1
        if self.hole:
            cnt[self.hole] += 1
        for c, n in cnt.items():
            if rank(c) > mr:
                raise ValueError(f"deal: card {card_str(c)} exceeds max rank {mr}")
            if n > rules.decks:
                raise ValueError(f"deal: duplicate card {card_str(c)} ({n} copies)")
        total = sum(cnt.values())
        if rules["accordion"]["size"]:
            return  # a row in play holds fewer cards (and only the top cards are kept)
        if rules["sequences"]["count"]:
            aces = [card_str(c) for c in cnt if rank(c) == 1]
            if aces:
                raise ValueError(f"deal field 'sequences': {aces[0]} is in play (gaps are \"AS\")")
            want = rules.n_cards - 4 * rules.decks
            if total != want:
                raise ValueError(f"deal field 'sequences': {total} cards, expected {want}")
            return
        hole_game = rules["hole"]["present"]
        if not hole_game and total != rules.n_cards:
            missing = [
                card_str(card(r, s))
                for r in range(1, mr + 1)
                for s in range(4)
                if cnt[card(r, s)] < rules.decks
            ]
            raise ValueError(f"deal: missing cards {missing[:6]} (have {total} of {rules.n_cards})")


def _build_deck(rules: Rules) -> list[int]:
    one = [card(r, s) for r in range(1, rules.max_rank + 1) for s in range(4)]
    return one * rules.decks


def deal(rules: Rules | str, seed: int) -> Deal:
    """The reference program's deal for ``--random seed`` (MT19937 + Boost-style shuffle).

    Reproduces the reference's cards exactly (tableau piles in dealing order).
    """
    rules = load_rules(rules)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    deck = _build_deck(rules)
    rng = MT19937(seed)
    for i in range(len(deck) - 1, 0, -1):
        j = rng.uniform(i)
        deck[i], deck[j] = deck[j], deck[i]
    r = rules.data
    hole = 0
    if r["hole"]["present"]:
        b = r["hole"]["base card"]
        if b == "random":
            hole = deck.pop(0)
        else:
            hole = parse_card(b)[0]
            deck.remove(hole)
    nf = 4 * rules.decks if r["foundations"]["present"] else 0
    base = rules.foundation_base
    if base is None:
        base = rank(deck[0])
    base = base or 1
    founds = [0] * nf
    init = r["foundations"]["initial cards"]
    if nf and init == "all":
        for i in range(nf):
            c = card(base, i % 4)
            deck.remove(c)
            founds[i] = c
    elif nf and init == "one":
        c = deck.pop(0)
        founds[suit(c)] = c
    cells = [0] * r["cells"]["count"]
    for i in range(r["cells"]["pre-filled"]):
        cells[i] = deck.pop()
    stock = [deck.pop() for _ in range(min(r["stock"]["size"], len(deck)))]
    n_res = min(r["reserve"]["size"], len(deck))
    res_cards = [deck.pop() for _ in range(n_res)]
    reserve = [res_cards] if (r["reserve"]["stacked"] and n_res) else [[c] for c in res_cards]
    sequences: list[list[int]] = []
    if r["sequences"]["count"]:
        mr = rules.max_rank
        nrow = r["sequences"]["count"]
        sequences = [[] for _ in range(nrow)]
        for t in range(nrow * mr):
            c = deck.pop()
            sequences[t % nrow].append(0 if rank(c) == 1 else c)
    accordion = [deck.pop() for _ in range(min(r["accordion"]["size"], len(deck)))]
    n = r["tableau piles"]["count"]
    tab: list[list[int]] = [[] for _ in range(n)]
    if n:
        row = 0
        if r["tableau piles"]["diagonal deal"]:
            while deck and row < n:
                for p in range(n - row):
                    if not deck:
                        break
                    tab[p].append(deck.pop())
                row += 1
        t = 0
        while deck:
            tab[t % n].append(deck.pop())
            t += 1
        if r["tableau piles"]["diagonal deal"] and r["stock"]["deal type"] == "tableau piles":
            # the reference deals each diagonal row from its last pile down, so its first pile
            # is the shortest, and its stock deals start at that first pile: where the stock
            # goes to every pile, a pile's place is part of the deal (Spiderette)
            tab.reverse()
    if r["tableau piles"].get("kings to bottom"):
        tab = [
            [c for c in p if rank(c) == rules.max_rank]
            + [c for c in p if rank(c) != rules.max_rank]
            for p in tab
        ]
    top_only = r["tableau piles"]["face up cards"] == "top"
    down = [max(len(p) - 1, 0) if top_only else 0 for p in tab]
    return Deal(tab, down, founds, cells, stock, [], reserve, hole, base, sequences, accordion)
