"""The tuned launch table of the cast kernels: measured per GPU model and tensor shape.

``benchmarks/sweep_cast.py`` times every configuration of :mod:`fp8_scaling._fastcast` on the
GPU (CUDA-graph replay) and writes the fastest per shape into a JSON table; a copy ships as
``fp8_scaling/tuned.json``. The environment variable ``FP8_SCALING_TUNED`` points to another
table (a fresh sweep). Layout::

    {"format": 1, "gpus": {"NVIDIA H200": {
        "cast_jit":     {"8192x8192": {"kernel": "v2", "bm": 128, ...}, ...},
        "cast_delayed": {"8192x8192": {...}},
        "amax":         {"67108864": {"kernel": "v2", "block": 8192, ...}},
        "cast_spec":    {"8192x8192": {"kernel": "v3", "bm": 64, "bn": 128, "tma": 1, ...}},
        "cast_spec_traced": {...}}}}   # same, without tensor descriptors (torch.compile)

Lookup takes the exact shape (or element count) when present, else the entry of the nearest
element count. A GPU without an entry, or an entry with ``"kernel": "legacy"``, uses the
self-tuning kernels of :mod:`fp8_scaling._kernels` (the safe default). ``"compiled_ok": false``
in a GPU's entry (the sweep compiles a layer with the tuned kernels and compares it with eager
mode) keeps the self-tuning kernels for launches traced by ``torch.compile``. ``cast_spec``
names the first-pass kernel of the one-pass JIT cast: ``"v3"`` (:mod:`fp8_scaling._spec_first`,
with its :class:`~fp8_scaling._spec_first.SpecConfig`) or ``"v2"`` (the general cast kernel
with the ``cast_jit`` configuration, also the choice when the GPU has no entry).
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import torch

from ._fastcast import AmaxConfig, CastConfig

__all__ = [
    "amax_config",
    "cast_config",
    "gpu_name",
    "load_table",
    "reset_table",
    "spec_first_config",
]

_DEFAULT_PATH = Path(__file__).with_name("tuned.json")
_STATE: dict = {}


def load_table() -> dict:
    """The tuned table (``FP8_SCALING_TUNED`` or the packaged ``tuned.json``); ``{}`` if none.

    A missing or unreadable file gives an empty table (every lookup then returns ``None``).
    """
    if "table" not in _STATE:
        path = Path(os.environ.get("FP8_SCALING_TUNED") or _DEFAULT_PATH)
        try:
            table = json.loads(path.read_text())
            if not isinstance(table.get("gpus"), dict):
                table = {}
        except (OSError, ValueError, AttributeError):
            table = {}
        _STATE["table"] = table
    return _STATE["table"]


def reset_table() -> None:
    """Forget the loaded table and every cached lookup (after changing ``FP8_SCALING_TUNED``)."""
    _STATE.clear()
    _lookup.cache_clear()
    _spec_lookup.cache_clear()


@functools.cache
def gpu_name(index: int) -> str:
    """``torch.cuda.get_device_name`` of GPU ``index`` (cached)."""
    return torch.cuda.get_device_name(index)


def _nearest(entries: dict, numel: int, key: str) -> dict | None:
    if key in entries:
        return entries[key]
    best, best_d = None, math.inf
    for k, v in entries.items():
        try:
            size = math.prod(int(p) for p in k.split("x"))
        except ValueError:
            continue
        d = abs(math.log2(max(size, 1)) - math.log2(max(numel, 1)))
        if d < best_d:
            best, best_d = v, d
    return best


@functools.cache
def _lookup(gpu: str, kind: str, numel: int, key: str, compiled: bool = False):
    gpu_entry = load_table().get("gpus", {}).get(gpu, {})
    if compiled and gpu_entry.get("compiled_ok") is False:
        return None
    entries = gpu_entry.get(kind)
    if not isinstance(entries, dict) or not entries:
        return None
    e = _nearest(entries, numel, key)
    if not isinstance(e, dict) or e.get("kernel", "v2") != "v2":
        return None
    try:
        return (AmaxConfig if kind == "amax" else CastConfig).from_dict(e)
    except (TypeError, ValueError):
        return None


def _gpu(device: torch.device) -> str | None:
    if device.type != "cuda":
        return None
    return gpu_name(device.index if device.index is not None else torch.cuda.current_device())


def cast_config(x: torch.Tensor, delayed: bool, compiled: bool = False) -> CastConfig | None:
    """Tuned :class:`CastConfig` for casting the 2-D CUDA tensor ``x``, or ``None`` (legacy).

    ``compiled``: the launch is traced by ``torch.compile`` (see ``compiled_ok``)."""
    gpu = _gpu(x.device)
    m, n = x.shape
    if gpu is None or not (isinstance(m, int) and isinstance(n, int)):
        return None  # CPU, or symbolic shapes under torch.compile: the legacy kernels
    kind = "cast_delayed" if delayed else "cast_jit"
    return _lookup(gpu, kind, m * n, f"{m}x{n}", compiled)


def amax_config(x: torch.Tensor, compiled: bool = False) -> AmaxConfig | None:
    """Tuned :class:`AmaxConfig` for the amax of the CUDA tensor ``x``, or ``None`` (legacy)."""
    gpu = _gpu(x.device)
    n = x.numel()
    if gpu is None or not isinstance(n, int):
        return None
    return _lookup(gpu, "amax", n, str(n), compiled)


@functools.cache
def _spec_lookup(gpu: str, numel: int, key: str, traced: bool = False):
    from ._spec_first import SpecConfig

    gpu_entry = load_table().get("gpus", {}).get(gpu, {})
    entries = gpu_entry.get("cast_spec_traced") if traced else None
    entries = entries or gpu_entry.get("cast_spec")
    if not isinstance(entries, dict) or not entries:
        return None
    e = _nearest(entries, numel, key)
    if not isinstance(e, dict) or e.get("kernel") not in ("v2", "v3"):
        return None
    try:
        return (SpecConfig if e["kernel"] == "v3" else CastConfig).from_dict(e)
    except (TypeError, ValueError):
        return None


def spec_first_config(x: torch.Tensor, traced: bool = False):
    """Tuned first pass of the one-pass JIT cast for the 2-D CUDA tensor ``x``: a
    :class:`~fp8_scaling._spec_first.SpecConfig` (``"v3"``), a :class:`CastConfig` (``"v2"``,
    the general kernel with that tile) or ``None`` (the general kernel, ``cast_jit`` tile).
    ``traced``: for launches traced by torch.compile (``cast_spec_traced`` entries, the fastest
    variant without tensor descriptors, when the table has them)."""
    gpu = _gpu(x.device)
    m, n = x.shape
    if gpu is None or not (isinstance(m, int) and isinstance(n, int)):
        return None
    return _spec_lookup(gpu, m * n, f"{m}x{n}", traced)
