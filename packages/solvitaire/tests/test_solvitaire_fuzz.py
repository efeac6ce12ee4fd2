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


_NO_FOUND = {"foundations": {"present": False}, "tableau piles": {"count": 0}}


def _row_acc(size, moves, policies, max_rank):
    acc = {"size": size, "moves": moves, "build policies": policies}
    return {**_NO_FOUND, "accordion": acc, "max rank": max_rank}


def _row_gaps(direction, policy, fixed, max_rank):
    seq = {"count": 4, "direction": direction, "build policy": policy, "fixed suit": fixed}
    return {**_NO_FOUND, "sequences": seq, "max rank": max_rank}


_POLICIES = ["same-suit", "same-rank", "red-black", "any-suit"]


@st.composite
def row_rules(draw):
    if draw(st.booleans()):
        moves = draw(st.lists(st.sampled_from(["L1", "L2", "L3", "R1", "R2"]), min_size=1))
        raw = _row_acc(
            draw(st.integers(1, 20)),
            moves,
            draw(st.lists(st.sampled_from(_POLICIES), min_size=1, max_size=2)),
            draw(st.integers(1, 6)),
        )
    else:
        raw = _row_gaps(
            draw(st.sampled_from(["L", "R", "LR"])),
            draw(st.sampled_from(["same-suit", "red-black", "any-suit", "no-build"])),
            draw(st.booleans()),
            draw(st.integers(2, 6)),
        )
        raw["sequences"]["count"] = draw(st.integers(1, 4))
    return rules_from_dict(raw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=st.one_of(small_rules(), row_rules()), seed=st.integers(0, 10_000))
def test_fuzzed_rules_never_crash(rules, seed):
    d = deal(rules, seed)
    r = solve(d, rules, max_states=5_000, memory_limit=2**20)
    assert r.status in tuple(Status)
    if r.solved:
        verify_moves(d, rules, r.moves)
