"""The deadlock test (a proof that a position is lost) against exhaustive retrograde analysis.

Every position reachable from small deals (reduced decks) is enumerated with the independent
engine, which positions can still be won is computed backwards from the won ones, and every
position the compiled test calls deadlocked must be one that cannot be won.
"""

from dataclasses import replace

import pytest

from solvitaire import _core as cs
from solvitaire import deal, load_rules, solve
from solvitaire._engine import GameState
from solvitaire._rules import rules_from_dict
from solvitaire._solve import compile_rules

_KLONDIKE_LIKE = {
    "tableau piles": {
        "count": 3,
        "build policy": "red-black",
        "spaces policy": "kings",
        "move built group": "partial-if-card-above-buildable",
        "diagonal deal": True,
        "face up cards": "top",
    },
    "foundations": {"removable": True},
    "stock": {"size": 4, "deal count": 2, "redeal": True},
    "max rank": 3,
}
VARIANTS = {
    "klondike-like": _KLONDIKE_LIKE,
    "klondike-like-deep": {
        # no diagonal deal and no stock: 16 cards in 3 deep piles, so cards lie over lower
        # cards of their suit and over the cards they could be built on
        **_KLONDIKE_LIKE,
        "tableau piles": {**_KLONDIKE_LIKE["tableau piles"], "diagonal deal": False},
        "stock": {"size": 0},
        "max rank": 4,
    },
    "klondike-like-groups": {
        **_KLONDIKE_LIKE,
        "tableau piles": {
            **_KLONDIKE_LIKE["tableau piles"],
            "move built group": "yes",
            "diagonal deal": False,
        },
        "stock": {"size": 3, "deal count": 1, "redeal": True},
        "max rank": 4,
    },
    "same-suit-kings": {
        "tableau piles": {
            "count": 3,
            "build policy": "same-suit",
            "spaces policy": "kings",
            "move built group": "yes",
        },
        "max rank": 3,
    },
    "any-suit-no-spaces": {
        "tableau piles": {"count": 2, "build policy": "any-suit", "spaces policy": "no-build"},
        "foundations": {"removable": True},
        "max rank": 3,
    },
}


def _as_deal(d, gs: GameState):
    """The engine position ``gs`` as a Deal (to compile it for the core)."""
    found = [gs._found_top(f) if n else 0 for f, n in enumerate(gs.found)]
    return replace(
        d,
        tableau=[list(p) for p in gs.tab],
        down=list(gs.down),
        foundations=found,
        stock=list(gs.stock),
        waste=list(gs.waste),
    )


def _positions(d, rules, cap: int = 6000):
    """Every position reachable from deal ``d`` (None if more than ``cap``), its successors,
    and which positions can be won."""
    unlimited = rules.redeals < 0
    start = GameState(d, rules)
    key = {start.key(): 0}
    states, succ = [start], [[]]
    i = 0
    while i < len(states):
        st = states[i]
        for m in st.legal_moves():
            nxt = st.copy()
            nxt.apply(m, check=False)
            if unlimited:
                nxt.passes = 0  # the pass count matters only for limited redeals
            k = nxt.key()
            j = key.get(k)
            if j is None:
                if len(states) >= cap:
                    return None
                j = key[k] = len(states)
                states.append(nxt)
                succ.append([])
            succ[i].append(j)
        i += 1
    win = [st.won() for st in states]
    changed = True
    while changed:
        changed = False
        for i, nx in enumerate(succ):
            if not win[i] and any(win[j] for j in nx):
                win[i] = changed = True
    return states, win


def _check(names, seeds, cap) -> tuple[int, int, int]:
    """(positions checked, deadlocked positions, deals that can be won) over the variants."""
    checked = dead = won_deals = 0
    for name in names:
        rules = rules_from_dict(VARIANTS[name], name=name)
        for seed in seeds:
            d = deal(rules, seed)
            got = _positions(d, rules, cap)
            if got is None:
                continue
            states, win = got
            won_deals += win[0]
            for st, w in zip(states, win):
                cfg, S = compile_rules(rules, _as_deal(d, st))
                assert cfg[cs.DEADLOCK] == 1
                if cs.deadlocked(S, cfg):
                    dead += 1
                    assert not w, (name, seed, st.board())
                checked += 1
    return checked, dead, won_deals


def test_deadlocked_positions_cannot_be_won():
    names = [n for n in VARIANTS if n != "klondike-like"]  # (its positions take ~20 s)
    checked, dead, won_deals = _check(names, range(8), 6000)
    # the test must have looked at many positions and found deadlocks and winnable deals
    assert checked > 3000, checked
    assert dead > 50, dead
    assert won_deals > 3, won_deals


@pytest.mark.slow
def test_deadlocked_positions_cannot_be_won_many_deals():
    checked, dead, won_deals = _check(sorted(VARIANTS), range(40), 20000)
    assert checked > 50000, checked
    assert dead > 200, dead
    assert won_deals > 20, won_deals


def test_deadlock_applies_only_where_it_is_sound():
    on = ("klondike", "klondike-deal-1", "fan", "scotch-patience")
    off = ("free-cell", "spanish-patience", "alpha-star", "canfield", "black-hole", "spider")
    for g in on + off:
        rules = load_rules(g)
        cfg, _ = compile_rules(rules, deal(rules, 1))
        assert cfg[cs.DEADLOCK] == (g in on), g


def test_klondike_deals_proved_lost_at_the_start():
    # seeds 15 and 33: the start position is deadlocked; seed 22: deadlocked once a card with
    # a single way out (Q♣, onto K♦) takes its target (a search of tens of millions of states
    # did not decide them within 60 s before the test existed)
    rules = load_rules("klondike")
    for seed in (15, 33, 22):
        res = solve(seed, rules, timeout=30)
        assert res.status.value == "unsolvable"
        assert res.stats["deadlocks"] == 1
        assert res.stats["states"] == 0
