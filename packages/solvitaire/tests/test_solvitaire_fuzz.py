"""Hypothesis fuzzing: random small rule sets and deals never crash the solver."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solvitaire import Status, deal, solve, verify_moves
from solvitaire._rules import rules_from_dict

BUILD = ["any-suit", "red-black", "same-suit", "no-build"]


@st.composite
def small_rules(draw):
    raw = {
        "tableau piles": {
            "count": draw(st.integers(1, 5)),
            "build policy": draw(st.sampled_from(BUILD)),
            "spaces policy": draw(
                st.sampled_from(["any", "kings", "no-build", "auto-reserve-then-any"])
            ),
            "move built group": draw(st.sampled_from(["no", "yes", "whole-pile", "maximal-group"])),
            "diagonal deal": draw(st.booleans()),
            "face up cards": draw(st.sampled_from(["all", "top"])),
        },
        "foundations": {
            "removable": draw(st.booleans()),
            "base card": draw(st.sampled_from(["A", "2", "random"])),
        },
        "cells": {"count": draw(st.integers(0, 2))},
        "stock": {
            "size": draw(st.integers(0, 4)),
            "deal count": draw(st.integers(1, 3)),
            "redeal": draw(st.booleans()),
        },
        "reserve": {"size": draw(st.integers(0, 2)), "stacked": draw(st.booleans())},
        "max rank": draw(st.integers(2, 3)),
    }
    return rules_from_dict(raw)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=small_rules(), seed=st.integers(0, 10_000))
def test_fuzzed_rules_never_crash(rules, seed):
    d = deal(rules, seed)
    r = solve(d, rules, max_states=5_000, memory_limit=2**20)
    assert r.status in tuple(Status)
    if r.solved:
        verify_moves(d, rules, r.moves)
