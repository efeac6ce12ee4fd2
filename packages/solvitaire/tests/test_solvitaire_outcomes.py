"""Every decided outcome of the reference program (outcomes/*.tsv) must be reproduced."""

import csv

import pytest

from solvitaire import Status, deal, load_rules, solve, verify_moves
from solvitaire._rules import rules_from_dict

FAST_GAMES = [
    "klondike",
    "klondike-deal-1",
    "free-cell",
    "bakers-game",
    "black-hole",
    "golf",
    "canfield",
    "spiderette",
]

#: Rules the reference program actually applies where they differ from its presets: its rules
#: parser reads the key "complete piles" (the presets say "only complete pile moves"), so single
#: cards go to the foundations, and it places a group of 2+ cards only by the group policy.
#: Its outcomes for these games (its two presets with outcome files that set the key) are
#: outcomes of these rules (see README, Results).
REFERENCE_EFFECTIVE = {
    game: {
        "foundations": {"only complete pile moves": False},
        "tableau piles": {"built group placement": "group-policy"},
    }
    for game in ("spiderette", "simple-simon")
}


def _reference_rules(game):
    rules = load_rules(game)
    if game not in REFERENCE_EFFECTIVE:
        return rules
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in rules.data.items() if k != "meta"}
    for section, values in REFERENCE_EFFECTIVE[game].items():
        raw[section].update(values)
    return rules_from_dict(raw, name=f"{game}-reference-effective")


def _rows(shared_dir, game):
    with open(shared_dir / "outcomes" / f"{game}.tsv") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["outcome"] != "timed-out"]


def _check(game, row, timeout, strict=True):
    """Solve one reference deal. A disagreement always fails; with ``strict`` our own timeout
    fails too (the outcome was not reproduced). Returns True when reproduced."""
    rules = _reference_rules(game)
    seed = int(row["seed"])
    res = solve(seed, rules, timeout=timeout)
    if res.status == Status.TIMEOUT and not strict:
        return False
    assert res.status.value == row["outcome"], (game, seed, res.status, row["outcome"])
    if res.status == Status.SOLVED:
        verify_moves(deal(rules, seed), rules, res.moves)
    return True


def test_reference_outcomes_quick(shared_dir):
    n = 0
    for game in FAST_GAMES:
        for row in _rows(shared_dir, game):
            if int(row["ms"]) <= 5:  # the cheapest decided deals of each game
                # 2 s limit keeps the default suite short; timeouts are checked in the slow test
                n += _check(game, row, timeout=2.0, strict=False)
    assert n >= 15


ALL_GAMES = sorted(
    p.stem
    for p in __import__("pathlib")
    .Path(__file__)
    .resolve()
    .parents[3]
    .parent.joinpath("shared", "solvitaire", "outcomes")
    .glob("*.tsv")
)


#: Deals whose search needs more than the 60 s limit on a slow core (the specification lets our
#: limit be larger than the reference's): Spiderette seed 7 is solved in 32.9 M states (42 s of
#: CPU on a 2-core AMD EPYC box), which an H200 host core (0.4 M states/s) does not reach in
#: 60 s; Flower Garden seed 34 takes 16.9 M states (37 s here, 14.5 M in 60 s on that host).
LONGER_TIMEOUT_S = {("spiderette", 7): 240.0, ("flower-garden", 34): 240.0}


@pytest.mark.slow
@pytest.mark.parametrize("game", ALL_GAMES or ["klondike"])
def test_reference_outcomes_all(shared_dir, game):
    rows = _rows(shared_dir, game)
    for row in rows:
        _check(game, row, timeout=LONGER_TIMEOUT_S.get((game, int(row["seed"])), 60.0))


def test_longer_timeouts_name_decided_reference_deals(shared_dir):
    # a deal listed for a longer limit must be one the reference decided (else it is never run)
    for game, seed in LONGER_TIMEOUT_S:
        assert seed in {int(r["seed"]) for r in _rows(shared_dir, game)}, (game, seed)
