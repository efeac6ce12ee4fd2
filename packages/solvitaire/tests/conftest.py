"""Shared fixtures and small-deck rule variants for the solvitaire tests."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "solvitaire"

#: Reduced-deck variants (max rank 3-4, few piles) used for exhaustive oracle cross-checks.
SMALL_VARIANTS = {
    "klondike-small": {
        "tableau piles": {
            "count": 3,
            "build policy": "red-black",
            "spaces policy": "kings",
            "move built group": "partial-if-card-above-buildable",
            "diagonal deal": True,
            "face up cards": "top",
        },
        "foundations": {"removable": True},
        "stock": {"size": 6, "deal count": 2, "redeal": True},
        "max rank": 3,
    },
    # draw 3 with unlimited redeals: the stock dominance (a smaller waste of the same
    # residue, or any waste against a fresh pass) prunes states here
    "klondike-small-draw3": {
        "tableau piles": {
            "count": 2,
            "build policy": "red-black",
            "spaces policy": "kings",
            "move built group": "partial-if-card-above-buildable",
            "diagonal deal": True,
            "face up cards": "top",
        },
        "foundations": {"removable": True},
        "stock": {"size": 8, "deal count": 3, "redeal": True},
        "max rank": 4,
    },
    "klondike-small-draw1-vegas": {
        "tableau piles": {
            "count": 3,
            "build policy": "red-black",
            "spaces policy": "kings",
            "move built group": "yes",
            "diagonal deal": True,
            "face up cards": "top",
        },
        "stock": {"size": 5, "deal count": 1, "redeal": True, "redeals": 1},
        "max rank": 3,
    },
    "klondike-small-draw1": {
        "tableau piles": {
            "count": 3,
            "build policy": "red-black",
            "spaces policy": "kings",
            "move built group": "partial-if-card-above-buildable",
            "diagonal deal": True,
            "face up cards": "top",
        },
        "foundations": {"removable": True},
        "stock": {"size": 6, "deal count": 1, "redeal": True},
        "max rank": 3,
    },
    "freecell-small": {
        "tableau piles": {"count": 4, "build policy": "red-black"},
        "cells": {"count": 1},
        "max rank": 3,
    },
    "two-cell-small": {
        "tableau piles": {"count": 4, "build policy": "red-black"},
        "foundations": {"removable": True},
        "cells": {"count": 1},
        "max rank": 3,
    },
    "bakers-game-small": {
        "tableau piles": {"count": 4, "build policy": "same-suit"},
        "cells": {"count": 1},
        "max rank": 3,
    },
    "canfield-small": {
        "tableau piles": {
            "count": 3,
            "build policy": "red-black",
            "move built group": "partial-if-card-above-buildable",
            "spaces policy": "auto-reserve-then-any",
        },
        "foundations": {"initial cards": "one", "base card": "random"},
        "stock": {"size": 4, "deal count": 2, "redeal": True},
        "reserve": {"size": 3, "stacked": True},
        "max rank": 3,
    },
    # spaces fill themselves from the waste: the waste's top card matters, so the stock is
    # keyed exactly (no cycle key, no stock dominance; seed 20 was answered wrongly with them)
    "canfield-small-waste-spaces": {
        "tableau piles": {
            "count": 3,
            "build policy": "red-black",
            "move built group": "partial-if-card-above-buildable",
            "spaces policy": "auto-reserve-then-waste",
        },
        "foundations": {"initial cards": "one", "base card": "random"},
        "stock": {"size": 8, "deal count": 2, "redeal": True},
        "reserve": {"size": 2, "stacked": True},
        "max rank": 4,
    },
    "black-hole-small": {
        "tableau piles": {"count": 5, "build policy": "no-build"},
        "foundations": {"present": False},
        "hole": {"present": True},
        "max rank": 4,
    },
    "golf-small": {
        "tableau piles": {"count": 3, "build policy": "no-build"},
        "foundations": {"present": False},
        "stock": {"size": 5, "deal type": "hole"},
        "hole": {"present": True, "base card": "random", "build loops": False},
        "max rank": 4,
    },
    "spiderette-small": {
        "tableau piles": {
            "count": 3,
            "build policy": "any-suit",
            "move built group": "yes",
            "move built group policy": "same-suit",
            "diagonal deal": True,
            "face up cards": "top",
        },
        "foundations": {"only complete pile moves": True},
        "stock": {"size": 3, "deal type": "tableau piles"},
        "max rank": 3,
    },
    # the rules the reference program applies to Spiderette: single cards go up, and groups go
    # onto a card only by the group policy
    "spiderette-reference-small": {
        "tableau piles": {
            "count": 3,
            "build policy": "any-suit",
            "move built group": "yes",
            "move built group policy": "same-suit",
            "built group placement": "group-policy",
            "diagonal deal": True,
            "face up cards": "top",
        },
        "stock": {"size": 3, "deal type": "tableau piles"},
        "max rank": 3,
    },
    "flower-garden-small": {
        "tableau piles": {"count": 3, "build policy": "any-suit"},
        "foundations": {"removable": True},
        "reserve": {"size": 3},
        "max rank": 3,
    },
    "spanish-small-any-space": {
        "tableau piles": {
            "count": 4,
            "build policy": "any-suit",
            "move built group": "yes",
            "spaces policy": "any",
            "search order": "both",
        },
        "foundations": {"removable": True},
        "max rank": 3,
    },
    # the search order hint of Alpha Star and Spanish Patience (shortest piles first)
    "alpha-star-small": {
        "tableau piles": {
            "count": 4,
            "build policy": "same-suit",
            "move built group": "yes",
            "search order": "shortest-pile-first",
        },
        "foundations": {"initial cards": "all"},
        "max rank": 4,
    },
    # both move orders in alternation (the first to decide answers)
    "alpha-star-small-both": {
        "tableau piles": {
            "count": 4,
            "build policy": "same-suit",
            "move built group": "yes",
            "search order": "both",
        },
        "foundations": {"initial cards": "all"},
        "max rank": 4,
    },
}

# the colour streamliner beside the exact search (only its solutions may answer)
_KLONDIKE = SMALL_VARIANTS["klondike-small"]
SMALL_VARIANTS["klondike-small-colour"] = {
    **_KLONDIKE,
    "tableau piles": {
        **_KLONDIKE["tableau piles"],
        "colour streamliner": True,
        "search head start": 0,
    },
    "max rank": 4,
}

# draw 1 with 16 cards: lost deals occur (about 6 %), where a stock card goes onto the
# tableau only with a card put onto it next (the core's WPAIR)
SMALL_VARIANTS["klondike-small-draw1-r4"] = {
    **_KLONDIKE,
    "stock": {"size": 8, "deal count": 1, "redeal": True},
    "max rank": 4,
}

# the draw-one relaxation beside the exact search (only its proofs of a lost deal may
# answer), draw 3 with unlimited redeals and draw 2 with one redeal
_DRAW3 = SMALL_VARIANTS["klondike-small-draw3"]
SMALL_VARIANTS["klondike-small-draw3-relaxed"] = {
    **_DRAW3,
    "tableau piles": {**_DRAW3["tableau piles"], "search head start": 0},
    "stock": {**_DRAW3["stock"], "draw-one relaxation": True},
}
SMALL_VARIANTS["klondike-small-draw2-vegas-relaxed"] = {
    **_KLONDIKE,
    "tableau piles": {**_KLONDIKE["tableau piles"], "search head start": 0},
    "stock": {
        "size": 6,
        "deal count": 2,
        "redeal": True,
        "redeals": 1,
        "draw-one relaxation": True,
    },
}

# the arrangement relaxation beside the exact search (only its proofs of a lost deal may
# answer), draw 3 with unlimited redeals (a quarter of these deals are lost)
SMALL_VARIANTS["klondike-small-draw3-arranged"] = {
    **_DRAW3,
    "tableau piles": {
        **_DRAW3["tableau piles"],
        "search head start": 0,
        "arrangement relaxation": True,
    },
}

# the same game with the reference program's move order and a depth-limited search beside
# shortest pile first (neither may change an answer)
_SPIDERETTE_REF = SMALL_VARIANTS["spiderette-reference-small"]
SMALL_VARIANTS["spiderette-reference-small-order"] = {
    **_SPIDERETTE_REF,
    "tableau piles": {
        **_SPIDERETTE_REF["tableau piles"],
        "search order": ["reference", "shortest-pile-first"],
        "search depth limit": 3,
    },
}


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(
            f"reference data not found at {SHARED} (needs shared/solvitaire beside the repo)"
        )
    return SHARED


@pytest.fixture(scope="session")
def small_variants() -> dict:
    return SMALL_VARIANTS


def _cross_check(variant: dict, name: str, seeds, oracle_states: int = 300_000) -> tuple[int, int]:
    """Solve each seed's deal of ``variant`` and compare with the brute-force oracle (deals
    whose oracle runs past ``oracle_states`` are skipped); every solution is replayed.
    Returns (deals won, deals decided by the oracle)."""
    from solvitaire import Status, brute_force, deal, solve, verify_moves
    from solvitaire._rules import rules_from_dict

    rules = rules_from_dict(variant, name=name)
    wins = decided = 0
    for s in seeds:
        d = deal(rules, s)
        oracle = brute_force(d, rules, max_states=oracle_states)
        if oracle is None:
            continue
        ours = solve(d, rules, memory_limit=2**22)
        assert ours.status in (Status.SOLVED, Status.UNSOLVABLE), (name, s, ours.status)
        assert ours.solved == oracle, (name, s)
        if ours.solved:
            verify_moves(d, rules, ours.moves)
        wins += oracle
        decided += 1
    return wins, decided


@pytest.fixture(scope="session")
def cross_check():
    """:func:`_cross_check`: our answers against the brute-force oracle on small decks."""
    return _cross_check
