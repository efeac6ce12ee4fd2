"""Timing primitives: warm-up, repeated timing, robust statistics."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Timing", "summarize", "time_callable"]


@dataclass(frozen=True)
class Timing:
    """Summary of repeated timings of one callable, in seconds per call."""

    median_s: float
    iqr_s: float
    min_s: float
    max_s: float
    repeats: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "median_s": self.median_s,
            "iqr_s": self.iqr_s,
            "min_s": self.min_s,
            "max_s": self.max_s,
            "repeats": self.repeats,
        }


def summarize(samples: list[float]) -> Timing:
    """Median, inter-quartile range, min and max of per-call times (seconds)."""
    if not samples:
        raise ValueError("cannot summarise an empty list of timings")
    if any(s < 0 for s in samples):
        raise ValueError(f"timings must be non-negative, got {samples}")
    xs = sorted(samples)
    if len(xs) >= 4:
        q = statistics.quantiles(xs, n=4, method="inclusive")
        iqr = q[2] - q[0]
    else:
        iqr = xs[-1] - xs[0]
    return Timing(statistics.median(xs), iqr, xs[0], xs[-1], len(xs))


def _cuda_sync(device: str) -> Callable[[], None]:
    if device != "cuda":
        return lambda: None
    import torch

    return torch.cuda.synchronize


def time_callable(
    fn: Callable[[], Any],
    *,
    device: str = "cpu",
    warmup: int = 3,
    repeats: int = 20,
    min_time_s: float = 0.0,
    mode: str = "latency",
) -> Timing:
    """Time ``fn`` after ``warmup`` untimed calls.

    On CUDA each call is bracketed with CUDA events (``torch.cuda.Event``), so asynchronous
    kernels are counted; on CPU ``time.perf_counter`` is used. If ``min_time_s`` is set,
    repetitions continue until that much time has been spent.

    ``mode`` (CUDA only; CPU timing is the same in both):

    * ``"latency"`` (default): the device is synchronised after every call, so each sample is
      one call's latency from the moment the host starts issuing it, host launch time included.
    * ``"pipelined"``: calls are issued back to back with an event between consecutive calls and
      one synchronisation at the end, as in a training loop where the host runs ahead of the
      device. A sample is the device time between two call boundaries; if the host issues work
      more slowly than the device executes it, the device idles and that idle time is counted,
      so host-bound code still measures as host-bound.
    """
    if mode not in ("latency", "pipelined"):
        raise ValueError(f"mode must be 'latency' or 'pipelined', got {mode!r}")
    if warmup < 0 or repeats < 1:
        raise ValueError(
            f"need warmup >= 0 and repeats >= 1, got warmup={warmup} repeats={repeats}"
        )
    sync = _cuda_sync(device)
    for _ in range(warmup):
        fn()
    sync()
    samples: list[float] = []
    spent = 0.0
    if device == "cuda" and mode == "pipelined":
        return summarize(_pipelined_cuda(fn, repeats, min_time_s))
    if device == "cuda":
        import torch

        while len(samples) < repeats or spent < min_time_s:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            dt = start.elapsed_time(end) / 1e3
            samples.append(dt)
            spent += dt
    else:
        while len(samples) < repeats or spent < min_time_s:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            samples.append(dt)
            spent += dt
    return summarize(samples)


def _pipelined_cuda(fn: Callable[[], Any], repeats: int, min_time_s: float) -> list[float]:
    """Back-to-back CUDA timing: one event per call boundary, one synchronisation per batch."""
    import torch

    samples: list[float] = []
    while len(samples) < repeats or sum(samples) < min_time_s:
        n = max(repeats - len(samples), 1)
        events = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
        events[0].record()
        for i in range(n):
            fn()
            events[i + 1].record()
        events[-1].synchronize()
        samples.extend(a.elapsed_time(b) / 1e3 for a, b in itertools.pairwise(events))
    return samples
