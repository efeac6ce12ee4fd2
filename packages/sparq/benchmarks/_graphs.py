"""CUDA-graph capture and per-call timing shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from sparq.kernels._common import capture_graph, event_seconds


def graph_replay(fn: Callable[[], object]) -> Callable[[], None]:
    """Capture ``fn`` (already run once, so compiled and autotuned) in a CUDA graph and return
    the graph's ``replay`` (:func:`sparq.kernels._common.capture_graph`: ``fn`` runs once more
    on a side stream first; fixed shapes, no host synchronisation)."""
    return capture_graph(fn).replay


def seconds_per_call(fn: Callable[[], object], reps: int, cuda: bool = True) -> float:
    """Mean seconds per call of ``fn`` over ``reps`` back-to-back calls after one warm-up call:
    CUDA events around the loop on the GPU, ``time.perf_counter`` on the CPU."""
    fn()
    if not cuda:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps
    torch.cuda.synchronize()
    return event_seconds(fn, reps)
