"""The committed tuning table: per-shape kernel choices measured on a GPU.

``tuned.json`` (next to this module, or the file named by the ``SPARQ_TUNED_JSON`` environment
variable, unset or empty for the committed one; written by ``benchmarks/tune_sparq.py``) maps
:func:`shape_key` strings to entries such as::

    {"selection": "sampled", "step1": {"tile": 512, "num_warps": 4, "fma": true},
     "step2": {"block": 64, "num_warps": 4, "num_stages": 3, "num_splits": 2},
     "t_sparq_s": 8.1e-4, "t_dense_s": 3.7e-3, "dense_faster": false}

Entries apply only on a CUDA device whose name equals the table's ``device`` (e.g.
``"NVIDIA H200"``); anywhere else the defaults and the runtime choice are used.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path

__all__ = ["TUNED_PATH", "reload", "shape_key", "tuned_entry"]

TUNED_PATH = Path(__file__).with_name("tuned.json")


def shape_key(B: int, Hq: int, Hkv: int, S: int, dh: int, r: int, k: int) -> str:
    """Table key of one decode shape (all Python ints; ``k`` already clipped to ``S``)."""
    return f"B={B},Hq={Hq},Hkv={Hkv},S={S},dh={dh},r={r},k={k}"


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    named = os.environ.get("SPARQ_TUNED_JSON") or None
    try:
        data = json.loads(Path(named or TUNED_PATH).read_text())
    except (OSError, ValueError) as e:
        if named:  # a table the user asked for must not be ignored silently
            warnings.warn(
                f"SPARQ_TUNED_JSON={named!r} cannot be read ({type(e).__name__}: {e}); the "
                "kernels run with their untuned defaults. Point it at a table written by "
                "benchmarks/tune_sparq.py, or unset it for the committed table.",
                stacklevel=3,
            )
        return {}
    try:
        import torch

        if not torch.cuda.is_available() or torch.cuda.get_device_name() != data.get("device"):
            return {}
    except Exception:
        return {}
    shapes = data.get("shapes", {})
    return shapes if isinstance(shapes, dict) else {}


def reload() -> None:
    """Forget the cached table (after writing a new one)."""
    _table.cache_clear()


def tuned_entry(key: str) -> dict | None:
    """The table entry for ``key`` on the current device, or ``None``."""
    entry = _table().get(key)
    return entry if isinstance(entry, dict) else None
