"""monobench: the workspace's cross-package benchmark harness.

Benchmark files (``packages/<pkg>/benchmarks/bench_*.py``) register cases with :func:`case`
and return a :class:`Measure` holding a candidate and a baseline measured in the same run.
``bench run --package <pkg>`` times them and writes JSON + markdown with a speed-up column.
"""

from monobench._registry import Case, Measure, case, registered_cases

__all__ = ["Case", "Measure", "case", "registered_cases"]
