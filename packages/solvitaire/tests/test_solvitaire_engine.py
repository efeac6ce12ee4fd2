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


def _spider_like(placement: str) -> tuple:
    from solvitaire import Deal
    from solvitaire._cards import parse_card

    rules = rules_from_dict(
        {
            "tableau piles": {
                "count": 3,
                "build policy": "any-suit",
                "move built group": "yes",
                "move built group policy": "same-suit",
                "built group placement": placement,
            },
            "max rank": 6,
        },
        name="spider-like",
    )
    rest = [f"{r}{s}" for r in "A23456" for s in "CHSD"]
    piles = [["5H", "4H"], ["6S"], ["6H"]]
    used = {c for p in piles for c in p}
    piles[1] = [c for c in rest if c not in used][:20] + piles[1]
    cards = [[parse_card(c)[0] for c in p] for p in piles]
    return rules, GameState(Deal(tableau=cards, down=[0, 0, 0], foundations=[0] * 4), rules)


def test_built_group_placement_policy():
    # a same-suit group 5H-4H goes onto any 6 by the build policy (the usual Spider rule) ...
    _, gs = _spider_like("build-policy")
    assert {Move("t", 0, 2, "t", 1), Move("t", 0, 2, "t", 2)} <= set(gs.legal_moves())
    # ... but only onto the same-suit 6H when groups are placed by the group policy
    _, gs = _spider_like("group-policy")
    legal = set(gs.legal_moves())
    assert Move("t", 0, 2, "t", 2) in legal
    assert Move("t", 0, 2, "t", 1) not in legal
    assert gs.is_legal(Move("t", 0, 2, "t", 2))
    assert not gs.is_legal(Move("t", 0, 2, "t", 1))
    assert Move("t", 0, 1, "t", 1) not in legal  # a single 4H needs a 5
