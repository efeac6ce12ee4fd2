"""SparQ Attention: bandwidth-efficient decode attention for off-the-shelf LLMs.

Public API: :func:`sparq_attention` (decode step), :func:`sparq_attention_prefill` (multi-query
variant), :func:`sparq_attention_reference`, :class:`SparQConfig`, :class:`SparQCache`,
:class:`SparQStats`; submodules ``sparq.cost``, ``sparq.baselines``, ``sparq.eval``, ``sparq.hf``.
"""

from importlib.metadata import PackageNotFoundError, version

from sparq._api import sparq_attention, sparq_attention_prefill
from sparq._cache import SparQCache
from sparq._config import SparQConfig, StepPlan
from sparq._reference import SparQStats, sparq_attention_reference

try:
    __version__ = version("sparq")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "SparQCache",
    "SparQConfig",
    "SparQStats",
    "StepPlan",
    "__version__",
    "sparq_attention",
    "sparq_attention_prefill",
    "sparq_attention_reference",
]
