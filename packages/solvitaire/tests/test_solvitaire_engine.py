"""The engine's direct legality check agrees with its full legal-move list."""

import random

from solvitaire import GameState, Move, deal
from solvitaire._rules import rules_from_dict


def _candidates(gs: GameState) -> list[Move]:
    out = []
    for src, count in (("t", len(gs.tab)), ("c", len(gs.cells)), ("r", len(gs.reserve))):
        for si in range(count):
            for n in (1, 2, 3):
                for dst, dcount in (("t", len(gs.tab)), ("c", len(gs.cells)), ("f", 1), ("h", 1)):
                    out += [Move(src, si, n, dst, di) for di in range(dcount)]
    out += [Move("f", f, 1, "t", j) for f in range(len(gs.found)) for j in range(len(gs.tab))]
    return out


def test_is_legal_matches_legal_moves(small_variants):
    checked = 0
    for name, variant in small_variants.items():
        rules = rules_from_dict(variant, name=name)
        rng = random.Random(7)
        for seed in range(3):
            gs = GameState(deal(rules, seed), rules)
            for _ in range(25):
                legal = set(gs.legal_moves())
                free = gs.cells.index(0) if 0 in gs.cells else -1
                for m in _candidates(gs):
                    if m.dst == "c" and m.di != free:
                        continue  # the list names only the first free cell
                    assert gs.is_legal(m) == (m in legal), (name, seed, m)
                    checked += 1
                if not legal:
                    break
                gs.apply(rng.choice(sorted(legal)), check=True)
    assert checked > 10_000
