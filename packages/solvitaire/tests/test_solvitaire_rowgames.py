"""Accordion and Gaps: oracle cross-checks on small decks, metamorphic relations, deals, errors."""

from dataclasses import replace

import pytest

from solvitaire import Deal, GameState, deal, load_rules, solve
from solvitaire._rules import rules_from_dict

_NO_FOUND = {"foundations": {"present": False}, "tableau piles": {"count": 0}}


def _acc(size, moves, policies, max_rank):
    return {
        **_NO_FOUND,
        "accordion": {"size": size, "moves": moves, "build policies": policies},
        "max rank": max_rank,
    }


def _gaps(direction, policy, fixed, max_rank):
    return {
        **_NO_FOUND,
        "sequences": {
            "count": 4,
            "direction": direction,
            "build policy": policy,
            "fixed suit": fixed,
        },
        "max rank": max_rank,
    }


#: Reduced Accordion and Gaps variants for the exhaustive cross-check (about half are won).
ROW_VARIANTS = {
    "accordion-14": _acc(14, ["L1", "L3"], ["same-suit", "same-rank"], 13),
    "accordion-14-right": _acc(14, ["L1", "R2"], ["same-suit", "same-rank"], 13),
    "accordion-16-red-black": _acc(16, ["L1"], ["red-black", "same-rank"], 4),
    "gaps-left": _gaps("L", "same-suit", False, 5),
    "gaps-left-fixed": _gaps("L", "same-suit", True, 4),
    "gaps-right-red-black": _gaps("R", "red-black", False, 4),
    "gaps-both": _gaps("LR", "same-suit", True, 4),
}


@pytest.mark.parametrize("name", sorted(ROW_VARIANTS))
def test_row_games_agree_with_the_oracle(name, cross_check):
    n = 12 if name == "gaps-left" else 24  # (its oracle takes ~0.25 s a deal)
    wins, decided = cross_check(ROW_VARIANTS[name], name, range(n), 200_000)
    assert decided >= 0.9 * n
    assert 0 < wins < decided  # both answers occur, so the check can fail either way


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ROW_VARIANTS))
def test_row_games_agree_with_the_oracle_thousands(name, cross_check):
    n = 200 if name == "gaps-left" else 500
    _, decided = cross_check(ROW_VARIANTS[name], name, range(1000, 1000 + n), 200_000)
    assert decided >= 0.9 * n


def _relabel(d: Deal, perm: list[int]) -> Deal:
    def c(x: int) -> int:
        return (x >> 2) * 4 + perm[x & 3] if x else 0

    return replace(
        d, accordion=[c(x) for x in d.accordion], sequences=[[c(x) for x in r] for r in d.sequences]
    )


@pytest.mark.parametrize("name", ["accordion-14-right", "gaps-left", "gaps-both"])
def test_suit_relabelling_and_row_order_keep_the_answer(name):
    rules = rules_from_dict(ROW_VARIANTS[name], name=name)
    for s in range(12):
        d = deal(rules, s)
        base = solve(d, rules, memory_limit=2**22).status
        assert solve(_relabel(d, [2, 3, 0, 1]), rules, memory_limit=2**22).status == base
        if d.sequences and not rules["sequences"]["fixed suit"]:  # rows are interchangeable
            rows = replace(d, sequences=d.sequences[::-1])
            assert solve(rows, rules, memory_limit=2**22).status == base


def test_accordion_moves_and_notation():
    rules = load_rules("accordion-knuth")
    d = Deal([], [], accordion=[4 * 6 + 1, 4 * 13 + 2, 4 * 10, 4 * 6 + 2])  # 6H KS 10C 6S
    gs = GameState(d, rules)
    assert [(m.si, m.di) for m in gs.legal_moves()] == [(3, 0)]  # 6S onto 6H, three left
    m = gs.legal_moves()[0]
    assert gs.describe(m) == "6S: pile 4 -> pile 1 (3 left, onto 6H)"
    gs.apply(m)
    assert gs.board() == "3 piles: 6S KS 10C"
    with pytest.raises(ValueError, match="illegal"):
        gs.apply(m)


def test_gaps_moves_and_win():
    rules = rules_from_dict(_gaps("L", "same-suit", True, 3), name="g3")
    # rows of 3 cells: 2C 3C gap / gap 3H 2H / 2S 3S gap / 3D 2D gap
    c = lambda r, s: r * 4 + s  # noqa: E731
    d = Deal([], [], sequences=[[c(2, 0), c(3, 0), 0], [0, c(3, 1), c(2, 1)],
                                [c(2, 2), c(3, 2), 0], [c(3, 3), c(2, 3), 0]])  # fmt: skip
    gs = GameState(d, rules)
    assert not gs.won()
    r = solve(d, rules)
    assert r.solved
    assert sorted(r.notation) == [
        "2D: row 4 col 2 -> row 4 col 1",
        "2H: row 2 col 3 -> row 2 col 1",
        "3D: row 4 col 1 -> row 4 col 3",
        "3D: row 4 col 3 -> row 4 col 2",
    ]


def test_deal_json_round_trip():
    for game in ("accordion", "gaps-one-deal"):
        rules = load_rules(game)
        d = deal(rules, 7)
        back = Deal.from_json(d.to_json(rules), rules)
        assert back.accordion == d.accordion
        assert back.sequences == d.sequences


def test_bad_row_game_input():
    with pytest.raises(ValueError, match=r"tableau piles\.count"):
        rules_from_dict({**ROW_VARIANTS["accordion-14"], "tableau piles": {"count": 2}})
    with pytest.raises(ValueError, match=r"accordion\.moves"):
        rules_from_dict(_acc(12, ["L0"], ["same-suit"], 3))
    with pytest.raises(ValueError, match=r"sequences\.count"):
        rules_from_dict({**_gaps("L", "same-suit", False, 4), "sequences": {"count": 5}})
    with pytest.raises(ValueError, match="must not be empty"):
        rules_from_dict(_acc(12, [], ["same-suit"], 3))
    rules = load_rules("gaps-one-deal")
    d = deal(rules, 1).to_dict(rules)
    d["sequences"][0][1] = "AH"
    with pytest.raises(ValueError, match="AH"):
        Deal.from_dict(d, rules)
    d["sequences"][0] = d["sequences"][0][:5]
    with pytest.raises(ValueError, match="sequences"):
        Deal.from_dict(d, rules)
