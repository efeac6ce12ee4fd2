"""Solver answers: brute-force oracle on reduced decks, metamorphic relations, replay."""

import numpy as np
import pytest

from solvitaire import Status, brute_force, deal, load_rules, solve, verify_moves
from solvitaire._rules import rules_from_dict

N_DEFAULT = 6  # deals per variant in the default suite (the slow suite runs 300 per variant)


def test_oracle_cross_check_default(small_variants, cross_check):
    total = 0
    for name, variant in small_variants.items():
        # their brute-force oracles take seconds to minutes per deal: slow suite only
        if name in ("flower-garden-small", "spanish-small-any-space", "two-cell-small"):
            continue
        _, decided = cross_check(variant, name, range(N_DEFAULT))
        total += decided
    assert total >= 11 * N_DEFAULT * 0.9  # a few oracle runs may exceed their state budget


@pytest.mark.slow
def test_oracle_cross_check_thousands(small_variants, cross_check):
    total = 0
    for name, variant in small_variants.items():
        n = 60 if name in ("flower-garden-small", "two-cell-small") else 300
        if name == "spanish-small-any-space":  # its oracle takes ~25 s per deal on 2 cores
            n = 20
        _, decided = cross_check(variant, name, range(1000, 1000 + n))
        total += decided
    assert total >= 2000


def _relabel(d, perm):
    from dataclasses import replace

    def c(x):
        return (x >> 2) * 4 + perm[x & 3] if x else 0

    return replace(
        d,
        tableau=[[c(x) for x in p] for p in d.tableau],
        foundations=[0] * len(d.foundations) if not any(d.foundations) else d.foundations,
        cells=[c(x) for x in d.cells],
        stock=[c(x) for x in d.stock],
        waste=[c(x) for x in d.waste],
        reserve=[[c(x) for x in p] for p in d.reserve],
        hole=c(d.hole),
    )


def _metamorphic(small_variants, name, n):
    rules = rules_from_dict(small_variants[name], name=name)
    perm = [2, 3, 0, 1]  # C<->S, H<->D: keeps colours, so every build policy is unchanged
    for s in range(n):
        d = deal(rules, s)
        base = solve(d, rules, memory_limit=2**22).status
        relab = solve(_relabel(d, perm), rules, memory_limit=2**22).status
        order = list(range(len(d.tableau)))[::-1]
        from dataclasses import replace

        permuted = replace(
            d, tableau=[d.tableau[i] for i in order], down=[d.down[i] for i in order]
        )
        perm_status = solve(permuted, rules, memory_limit=2**22).status
        assert base == relab == perm_status, (name, s)


def test_metamorphic_quick(small_variants):
    _metamorphic(small_variants, "freecell-small", 6)
    _metamorphic(small_variants, "alpha-star-small", 6)
    _metamorphic(small_variants, "alpha-star-small-both", 6)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "freecell-small",
        "bakers-game-small",
        "klondike-small",
        "black-hole-small",
        "alpha-star-small",
        "spanish-small-any-space",
    ],
)
def test_metamorphic_suit_relabel_and_pile_permutation(small_variants, name):
    _metamorphic(small_variants, name, 30)


_SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "game",
    [pytest.param(g, marks=_SLOW) for g in ("klondike", "free-cell", "golf", "black-hole")]
    + [pytest.param("canfield", marks=_SLOW)]
    # the row games decide these seeds in well under a second
    + ["accordion", "accordion-knuth", "late-binding-solitaire", "gaps-basic-variant"],
)
def test_full_games_solutions_replay(game):
    solved = 0
    for s in range(1, 4):
        r = solve(s, game, timeout=20)
        if r.solved:
            verify_moves(deal(game, s), game, r.moves)
            assert len(r.notation) == len(r.moves)
            solved += 1
    assert solved >= 1


def test_limits_and_bad_arguments():
    r = solve(6, "klondike", max_states=500)
    assert r.status == Status.TIMEOUT
    assert r.stats["states"] >= 500
    with pytest.raises(ValueError, match="timeout"):
        solve(1, "klondike", timeout=0)
    with pytest.raises(TypeError, match="deal must be"):
        solve("x", "klondike")


def test_card_moved_back_after_turning_a_card_up(small_variants):
    # seed 2016 is won only by moving a card away (turning a card up) and straight back onto
    # the same pile: the pruning "the card just moved is not moved on alone" must allow that
    rules = rules_from_dict(small_variants["spiderette-small"], name="spiderette-small")
    d = deal(rules, 2016)
    assert brute_force(d, rules, max_states=300_000) is True
    res = solve(d, rules, memory_limit=2**22)
    assert res.status == Status.SOLVED
    verify_moves(d, rules, res.moves)


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [("spiderette-reference-small", "SYM", 1), ("klondike-small-colour", "SUITSYM", 2)],
)
def test_streamliners_never_change_the_answer(small_variants, name, field, value):
    """A streamliner search (pile symmetry while the stock holds cards; keys that read only
    the rank and colour of each card), which may miss solutions, runs beside the exact one:
    its solutions answer, its exhausted searches never do. Here it runs first (the head
    start), so it decides some deals by itself and exhausts others, where the exact search
    must still give the answer."""
    import copy

    import solvitaire._solve as sv
    from solvitaire import _core, _driver

    variant = copy.deepcopy(small_variants[name])
    rules = rules_from_dict(variant, name=name)
    variant["tableau piles"].pop("colour streamliner", None)
    exact_rules = rules_from_dict(variant, name=name + "-exact")
    by_streamliner = exhausted = 0
    for s in range(40):
        d = deal(rules, s)
        plain = solve(d, exact_rules, streamline=False, memory_limit=2**22)
        assert solve(d, rules, memory_limit=2**22).status == plain.status, s
        cfg, S0 = sv.compile_rules(exact_rules, d)
        stream = cfg.copy()
        stream[getattr(_core, field)] = value
        kw = {"timeout": None, "max_states": None, "memory_limit": 2**22, "max_depth": 10**4}
        outcome, search, stats = _driver.run([stream, cfg], S0, sv._Z, decisive=[False, True], **kw)
        assert outcome == plain.status.value, s
        if stats.get("decided_by") == "streamliner":
            by_streamliner += 1
            sv.verify_moves(d, rules, sv._to_moves(search.solution_rows(10**6).tolist(), rules))
        # the streamliner ran out of moves without a solution: the exact search answered
        exhausted += search.decisive and stats.get("streamliner_states", 0) > 0
    assert by_streamliner >= 1
    assert exhausted >= 1


def test_colour_streamliner_solves_klondike_deals():
    """Klondike (its preset searches the colour streamliner beside the exact search after a
    head start): without the head start (and without the arrangement relaxation, which
    answers first) the streamliner answers seed 84 first."""
    import json

    raw = json.loads(load_rules("klondike").to_json())
    raw["tableau piles"]["search head start"] = 0
    raw["tableau piles"].pop("arrangement relaxation")
    r = solve(84, rules_from_dict(raw, name="klondike-now"), timeout=30)
    assert r.solved
    assert r.stats["decided_by"] == "streamliner"
    assert r.stats["streamliner"] == "colour symmetry"
    assert solve(84, "klondike", timeout=30).solved


@pytest.mark.parametrize(
    "name", ["klondike-small-draw3-relaxed", "klondike-small-draw2-vegas-relaxed"]
)
def test_draw_one_relaxation_never_changes_the_answer(small_variants, name):
    """The draw-one relaxation (the same deal with the stock dealt one card at a time, a game
    with more moves) runs beside the exact search: the rules' own alternation gives the exact
    answer, and run first (alone until it ends), the relaxation answers exactly the deals it
    proves lost while its solutions never answer (deals lost in the real game but won in
    draw 1 keep their answer: the exact search then decides)."""
    import copy

    import solvitaire._solve as sv
    from solvitaire import _driver

    variant = copy.deepcopy(small_variants[name])
    rules = rules_from_dict(variant, name=name)
    variant["stock"].pop("draw-one relaxation")
    exact = rules_from_dict(variant, name=name + "-exact")
    kw = {"timeout": None, "max_states": None, "memory_limit": 2**22, "max_depth": 10**4}
    by_relaxation = lost_but_won_in_draw1 = 0
    for s in range(60):
        d = deal(rules, s)
        plain = solve(d, exact, memory_limit=2**22)
        assert solve(d, rules, memory_limit=2**22).status == plain.status, s
        cfg, S0 = sv.compile_rules(exact, d)
        outcome, search, stats = _driver.run(
            [sv.relaxation_cfg(cfg), cfg], S0, sv._Z, relaxed=[True, False], head_start=10**9, **kw
        )
        assert outcome == plain.status.value, s
        if stats.get("decided_by") == "relaxation":
            by_relaxation += 1
            assert stats["relaxation"] == "draw 1"
        elif outcome == "unsolvable":
            lost_but_won_in_draw1 += 1  # the relaxation found a solution, the exact search none
            assert search.decisive, s
            assert stats["relaxation_states"] > 0, s
    assert by_relaxation > 0
    assert lost_but_won_in_draw1 > 0


def test_draw_one_relaxation_proves_klondike_deals_lost():
    """Klondike (its preset searches the draw-one relaxation beside the exact search and the
    colour streamliner): seed 558 is lost in draw 1 (a proof of 20,000 states), so it is
    lost, decided by the relaxation after the exact search's head start (here without the
    arrangement relaxation, which decides it first)."""
    import copy

    data = copy.deepcopy(load_rules("klondike").data)
    data["tableau piles"].pop("arrangement relaxation")
    r = solve(558, rules_from_dict(data, name="klondike-draw-one-only"), timeout=60)
    assert r.stats["relaxation"] == "draw 1"
    assert r.status == Status.UNSOLVABLE
    assert r.stats["decided_by"] == "relaxation"
    assert r.stats["relaxation_states"] < 100_000


def _arrangement_outcome(rules, d):
    """The arrangement relaxation of deal ``d`` run to its end: the driver's status code."""
    import solvitaire._solve as sv
    from solvitaire import _arrange, _core

    cfg, _ = sv.compile_rules(rules, d)
    search = _arrange.ArrangementSearch(_arrange._inputs(rules, d), cfg, 2**26, rules, d)
    while search.step() == _core.RUNNING:
        pass
    if search.moves is not None:  # a won abstract game made concrete: real moves that win
        verify_moves(d, rules, search.moves, notation=False)
    return search.status, search.moves


@pytest.mark.parametrize(
    "name",
    ["klondike-small", "klondike-small-draw3", "klondike-small-draw1", "klondike-small-draw1-r4"],
)
def test_arrangement_relaxation_never_loses_a_won_deal(small_variants, name):
    """The arrangement relaxation (a game that forgets where the face-up tableau cards lie,
    ``_core.arrange``) has every move of the real game, so a deal it loses is lost: on small
    decks, every deal it loses the brute-force oracle loses too (and on these it wins exactly
    the deals the oracle wins)."""
    from solvitaire import _core

    rules = rules_from_dict(small_variants[name], name=name)
    lost = made_concrete = 0
    for s in range(50):
        d = deal(rules, s)
        status, moves = _arrangement_outcome(rules, d)
        won = brute_force(d, rules, max_states=400_000)
        assert won is not None, s
        if status == _core.UNSOLVABLE:
            lost += 1
            assert won is False, s
        else:
            assert status == _core.SOLVED, s
            made_concrete += moves is not None
    if name == "klondike-small-draw3":
        assert lost > 0
    assert made_concrete >= 0.9 * (50 - lost)


def test_arrangement_relaxation_answers_beside_the_exact_search(small_variants):
    """With ``tableau piles.arrangement relaxation`` the relaxation runs in alternation with the
    exact search and every answer is the exact search's. Beside a search whose exhausted
    search cannot answer (a streamliner's role), the relaxation answers every lost deal."""
    import copy

    import solvitaire._solve as sv
    from solvitaire import _arrange, _driver

    variant = copy.deepcopy(small_variants["klondike-small-draw3-arranged"])
    rules = rules_from_dict(variant, name="arranged")
    variant["tableau piles"].pop("arrangement relaxation")
    exact = rules_from_dict(variant, name="exact")
    kw = {"timeout": None, "max_states": None, "memory_limit": 2**22, "max_depth": 10**4}
    lost = 0
    for s in range(60):
        d = deal(rules, s)
        plain = solve(d, exact, memory_limit=2**22).status
        assert solve(d, rules, memory_limit=2**22).status == plain, s
        cfg, S0 = sv.compile_rules(rules, d)
        arr = _arrange.arrangement_search(rules, d, cfg, 2**22)
        outcome, _, stats = _driver.run([cfg], S0, sv._Z, decisive=[False], extra=[arr], **kw)
        assert outcome == plain.value, s
        if outcome == "unsolvable":
            lost += 1
            assert stats["decided_by"] == "relaxation"
            assert stats["relaxation"] == "arrangement"
            assert stats["relaxation_states"] > 0
    assert lost > 0


def test_arrangement_relaxation_proves_klondike_deals_lost():
    """Klondike seed 90, whose exact proof takes about 39 M states, is lost in the arrangement
    relaxation (about 1.1 M abstract states); the preset asks for the relaxation, and a
    rules file or position that does not fit it gets none."""
    from solvitaire import _arrange, _core

    rules = load_rules("klondike")
    assert _arrangement_outcome(rules, deal(rules, 90))[0] == _core.UNSOLVABLE
    status, moves = _arrangement_outcome(rules, deal(rules, 3))
    assert status == _core.SOLVED
    assert moves
    cfg = np.zeros(_core.NCFG, np.int64)
    assert _arrange.arrangement_search(rules, deal(rules, 90), cfg, 2**20) is not None
    fc = load_rules("freecell")
    assert _arrange.arrangement_search(fc, deal(fc, 1), cfg, 2**20) is None


def test_arrangement_relaxation_solves_a_deal_the_exact_search_does_not():
    """Klondike seed 433 (undecided by the exact searches after 60 s and 80 M states): the
    arrangement relaxation wins its game in about 170,000 abstract states, and the winning
    line, made concrete, is a solution (replayed by the independent engine)."""
    r = solve(433, "klondike", timeout=60)
    assert r.status == Status.SOLVED
    assert r.stats["relaxation"] == "arrangement"
    verify_moves(deal("klondike", 433), "klondike", r.moves, notation=False)


def test_stock_cards_onto_the_tableau_only_with_a_card_onto_them(small_variants):
    """Draw 1 with unlimited redeals (every stock card can always be played): a stock card
    goes onto the tableau only when a card is put onto it next (``WPAIR``, see
    ``dfs._pair_node``). Every answer equals the search without that rule and the
    brute-force oracle's, in fewer states."""
    import solvitaire._solve as sv
    from solvitaire import _core, _driver

    rules = rules_from_dict(small_variants["klondike-small-draw1-r4"], name="d1r4")
    kw = {"timeout": None, "max_states": None, "memory_limit": 2**22, "max_depth": 10**4}
    with_rule = without = lost = 0
    for s in range(40):
        d = deal(rules, s)
        cfg, S0 = sv.compile_rules(rules, d)
        assert cfg[_core.WPAIR] == 1
        off = cfg.copy()
        off[_core.WPAIR] = 0
        on_out, _, on_stats = _driver.run([cfg], S0, sv._Z, **kw)
        off_out, _, off_stats = _driver.run([off], S0, sv._Z, **kw)
        assert on_out == off_out, s
        with_rule += on_stats["states"]
        without += off_stats["states"]
        if on_out == "unsolvable":
            lost += 1
            assert brute_force(d, rules, max_states=300_000) is False, s
    assert lost > 0
    assert with_rule < without


def test_solution_shortcut_gives_legal_shorter_solutions(small_variants, monkeypatch):
    """Every solution path, shortened (threshold lowered to 0), still replays and is never
    longer than the DFS path; on some deals it is strictly shorter."""
    import solvitaire._solve as sv

    monkeypatch.setattr(sv, "SHORTCUT_MIN_DEPTH", 0)
    shorter = solved = 0
    for name in ("klondike-small", "freecell-small", "alpha-star-small", "canfield-small"):
        rules = rules_from_dict(small_variants[name], name=name)
        for s in range(12):
            d = deal(rules, s)
            r = solve(d, rules, memory_limit=2**22)
            if not r.solved:
                continue
            solved += 1
            verify_moves(d, rules, r.moves)  # raises if a move is illegal or the game not won
            assert r.stats["solution_length"] <= r.stats["path_length"]
            shorter += r.stats["solution_length"] < r.stats["path_length"]
    assert solved >= 12
    assert shorter >= 1


def test_long_path_is_shortened():
    # Spanish Patience seed 2: the DFS path is ~79k moves, the replayed solution ~6k
    r = solve(2, "spanish-patience", timeout=20)
    assert r.solved
    assert r.stats["path_length"] > 4096
    assert r.stats["solution_length"] < r.stats["path_length"] // 4


def test_both_orders_agree_with_each_order(small_variants):
    """'search order: both' gives the answer of each single order (the searches are complete)
    and counts the nodes of both searches."""
    base = dict(small_variants["alpha-star-small-both"])
    answers = {}
    pair = ["shortest-pile-first", "shortest-pile-first-top-ties"]
    orders = ("both", "last-pile-first", "shortest-pile-first", "shortest-pile-first-top-ties")
    orders += ("reference",)
    for order in (*orders, pair):
        v = dict(base, **{"tableau piles": dict(base["tableau piles"], **{"search order": order})})
        rules = rules_from_dict(v, name=f"a-{order}")
        answers[str(order)] = [solve(deal(rules, s), rules).status for s in range(20)]
    # a head start for the first order (nodes it searches alone) changes no answer either
    tp = dict(base["tableau piles"], **{"search order": pair, "search head start": 40})
    rules = rules_from_dict(dict(base, **{"tableau piles": tp}), name="a-head-start")
    answers["head start"] = [solve(deal(rules, s), rules).status for s in range(20)]
    assert len({tuple(a) for a in answers.values()}) == 1, answers
    assert Status.SOLVED in answers["both"]
    assert Status.UNSOLVABLE in answers["both"]


def test_depth_limited_search_never_changes_the_answer(small_variants):
    """A depth-limited search (``search depth limit``) beside the exact one: a node at the
    limit counts as a dead end, so its exhausted search proves nothing unless the limit cut no
    node; it restarts 4x deeper instead. Its solutions answer (replayed like any other). Here
    it runs first (the head start), so it decides deals by itself, some after deepening."""
    import solvitaire._solve as sv
    from solvitaire import _core, _driver

    base = small_variants["spiderette-reference-small"]
    capped = dict(
        base, **{"tableau piles": dict(base["tableau piles"], **{"search depth limit": 2})}
    )
    rules = rules_from_dict(base, name="spr")
    assert rules_from_dict(capped, name="c").data["tableau piles"]["search depth limit"] == 2
    by_capped = deeper = 0
    for s in range(40):
        d = deal(rules, s)
        plain = solve(d, rules, streamline=False, memory_limit=2**22)
        assert (
            solve(d, rules_from_dict(capped, name="c"), memory_limit=2**22).status == plain.status
        )
        cfg, S0 = sv.compile_rules(rules, d)
        cap = cfg.copy()
        cap[_core.DCAP] = 2
        kw = {"timeout": None, "max_states": None, "memory_limit": 2**22, "max_depth": 10**4}
        outcome, search, stats = _driver.run([cap, cfg], S0, sv._Z, decisive=[False, True], **kw)
        assert outcome == plain.status.value, s
        if stats.get("decided_by") == "depth-limited":
            by_capped += 1
            deeper += stats["depth_limit"] > 2
            if outcome == "solved":
                sv.verify_moves(d, rules, sv._to_moves(search.solution_rows(10**6).tolist(), rules))
    assert by_capped >= 1
    assert deeper >= 1


def test_stock_dominance_prunes_and_agrees_with_the_oracle(small_variants):
    # draw 3, unlimited redeals: every answer equals the brute-force oracle's (no dominance,
    # no symmetry) while the stock dominance does prune states
    rules = rules_from_dict(small_variants["klondike-small-draw3"], name="kd3")
    pruned = decided = wins = 0
    for s in range(120):
        d = deal(rules, s)
        oracle = brute_force(d, rules, max_states=300_000)
        if oracle is None:
            continue
        ours = solve(d, rules, memory_limit=2**22)
        assert ours.solved == oracle, s
        pruned += ours.stats["stock_dominated"]
        decided += 1
        wins += oracle
    assert decided >= 100, decided
    assert 0 < wins < decided, (wins, decided)  # both answers occur
    assert pruned > 0


def test_spaces_filled_from_the_waste_key_the_stock_exactly(small_variants):
    # a space fills itself with the waste's top card, so states that differ only in where the
    # waste ends are different positions: answers must still equal the oracle's (seed 20 is a
    # deal that the cycle key with the stock dominance answered wrongly)
    rules = rules_from_dict(small_variants["canfield-small-waste-spaces"], name="cw")
    for s in (20, 21, 22):
        d = deal(rules, s)
        oracle = brute_force(d, rules, max_states=300_000)
        assert oracle is not None
        ours = solve(d, rules, memory_limit=2**22)
        assert ours.solved == oracle, s
        assert ours.stats["stock_dominated"] == 0
