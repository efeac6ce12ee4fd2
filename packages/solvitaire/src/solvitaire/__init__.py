"""A general patience (solitaire) solver and winnability estimator.

Rules are JSON (the Solvitaire schema, extended); deals reproduce the reference program's seeds;
the search core is compiled with numba; every solution is replayed by an independent engine.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("solvitaire")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

from ._cards import card_str, parse_card
from ._deal import Deal, deal
from ._engine import GameState, Move, brute_force, move_str
from ._rules import RULES_SCHEMA, Rules, game_names, load_rules
from ._solve import Result, Status, solve, verify_moves
from ._stats import interval_with_timeouts, wilson
from ._winnability import Estimate, plot_estimate, winnability

__all__ = [
    "RULES_SCHEMA",
    "Deal",
    "Estimate",
    "GameState",
    "Move",
    "Result",
    "Rules",
    "Status",
    "__version__",
    "brute_force",
    "card_str",
    "deal",
    "game_names",
    "interval_with_timeouts",
    "load_rules",
    "move_str",
    "parse_card",
    "plot_estimate",
    "solve",
    "verify_moves",
    "wilson",
    "winnability",
]
