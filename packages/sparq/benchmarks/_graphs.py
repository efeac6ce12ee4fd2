"""CUDA-graph capture shared by the benchmark scripts."""

from __future__ import annotations

from collections.abc import Callable

import torch


def graph_replay(fn: Callable[[], object]) -> Callable[[], None]:
    """Capture ``fn`` (already run once, so compiled and autotuned) in a CUDA graph and return
    the graph's ``replay``. ``fn`` runs once more on a side stream first, as capture requires
    warmed-up allocations; it must have fixed shapes and no host synchronisation."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay
