"""Binomial confidence intervals: Wilson score interval, and the timeouts rule of the paper."""

from __future__ import annotations

import math

__all__ = ["interval_with_timeouts", "wilson"]


def wilson(successes: int, failures: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``successes + failures`` trials.

    ``z`` defaults to the two-sided 95 % normal quantile. Returns ``(lo, hi)`` in [0, 1];
    ``(0.0, 1.0)`` when there are no trials. (Wilson, JASA 22(158), 1927.)
    """
    if successes < 0 or failures < 0:
        raise ValueError(f"counts must be >= 0, got successes={successes}, failures={failures}")
    n = successes + failures
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def interval_with_timeouts(
    solved: int, unsolvable: int, timeouts: int, z: float = 1.959963984540054
) -> tuple[float, float]:
    """The Solvitaire paper's interval: timeouts count as losses for the lower bound and as
    wins for the upper bound, ``[wilson(s, u + t).lo, wilson(s + t, u).hi]``
    (Blake & Gent, arXiv:1906.12314, Sec. 5)."""
    lo = wilson(solved, unsolvable + timeouts, z)[0]
    hi = wilson(solved + timeouts, unsolvable, z)[1]
    return lo, hi
