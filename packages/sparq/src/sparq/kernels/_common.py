"""Settings shared by the kernels."""

from __future__ import annotations

import os

# Triton's CPU interpreter mis-evaluates bf16 tensor-core products (it multiplies the raw bit
# patterns), so under TRITON_INTERPRET=1 the kernels upcast dot operands to fp32 first. Every
# other instruction (gathers, masks, online softmax, radix select) runs the same code path.
F32DOT = os.environ.get("TRITON_INTERPRET", "0") == "1"


def fastest(candidates, warmup: int = 1, reps: int = 3):
    """Key of the fastest zero-argument callable in ``candidates`` (a dict), timed with CUDA events.

    Each candidate runs ``warmup`` times (compilation, autotuning), then ``reps`` times between
    two events. Callers cache the answer per shape and never call this inside a CUDA-graph
    capture.
    """
    import torch

    times = {}
    for name, fn in candidates.items():
        for _ in range(warmup):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        end.synchronize()
        times[name] = start.elapsed_time(end)
    return min(times, key=times.get)
