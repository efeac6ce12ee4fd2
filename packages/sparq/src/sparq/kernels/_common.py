"""Settings shared by the kernels: interpreter dot products and programmatic dependent launch."""

from __future__ import annotations

import contextlib
import os

import triton
import triton.language as tl

# Triton's CPU interpreter mis-evaluates bf16 tensor-core products (it multiplies the raw bit
# patterns), so under TRITON_INTERPRET=1 the kernels upcast dot operands to fp32 first. Every
# other instruction (gathers, masks, online softmax, radix select) runs the same code path.
F32DOT = os.environ.get("TRITON_INTERPRET", "0") == "1"

try:  # grid dependency control (sm_90+); Triton >= 3.3 ships the two intrinsics
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

    HAS_PDL = True
except ImportError:  # pragma: no cover - older Triton: launches stay fully serialised
    HAS_PDL = False

    @triton.jit
    def gdc_wait():
        pass

    @triton.jit
    def gdc_launch_dependents():
        pass


_PDL = {"on": 0, "l2": False}


@triton.jit
def pdl_enter(PDL: tl.constexpr):
    """First statement of every SparQ kernel. With ``PDL`` (the kernel was launched with
    programmatic dependent launch) it waits until the previous kernel in the stream has finished
    and its writes are visible (``griddepcontrol.wait``); with ``PDL == 1`` it then lets the
    next kernel's programs start launching while this one runs
    (``griddepcontrol.launch_dependents``; ``PDL == 2`` does that at the end, see
    :func:`pdl_exit`). No memory is touched before the wait, so every read-after-write and
    write-after-read order of the serialised launches is kept; only the launch latency and the
    next grid's ramp-up overlap this kernel's tail."""
    if PDL:
        gdc_wait()
        if PDL == 1:
            gdc_launch_dependents()


@triton.jit
def pdl_exit(PDL: tl.constexpr):
    """Last statement of every SparQ kernel: with ``PDL == 2`` (late trigger) the next kernel may
    start launching once every program of this one has done its work."""
    if PDL == 2:
        gdc_launch_dependents()


@contextlib.contextmanager
def pdl_launches(on: int, l2: bool = False):
    """Within the block, the kernels of this package launch with programmatic dependent launch
    (``on``: 1 the next kernel may launch as soon as every program of this one has started, 2
    once every program has done its work, 0 off; Hopper and newer; ignored under the
    interpreter or without the Triton intrinsics) and, with ``l2``, with L2 eviction hints (see
    :func:`l2_hints`)."""
    prev = dict(_PDL)
    _PDL["on"] = int(on) if (on and HAS_PDL and not F32DOT) else 0
    _PDL["l2"] = bool(l2)
    try:
        yield
    finally:
        _PDL.update(prev)


def l2_hints() -> bool:
    """Whether the kernels launched now use L2 eviction hints: step 1 streams K_t with
    ``evict_first`` and writes the approximate logits with ``evict_last``, and the candidate
    passes read the logits with ``evict_first``, so that the logits scratch (written once, read
    once right after) tends to stay in L2 instead of being displaced by the K_t stream."""
    return _PDL["l2"]


@triton.jit
def load_hint(ptr, mask, other, HINT: tl.constexpr):
    """``tl.load`` with eviction policy ``evict_first`` (HINT 1), ``evict_last`` (2) or none."""
    if HINT == 1:
        x = tl.load(ptr, mask=mask, other=other, eviction_policy="evict_first")
    elif HINT == 2:
        x = tl.load(ptr, mask=mask, other=other, eviction_policy="evict_last")
    else:
        x = tl.load(ptr, mask=mask, other=other)
    return x


@triton.jit
def store_hint(ptr, value, mask, HINT: tl.constexpr):
    """``tl.store`` with eviction policy ``evict_first`` (HINT 1), ``evict_last`` (2) or none."""
    if HINT == 1:
        tl.store(ptr, value, mask=mask, eviction_policy="evict_first")
    elif HINT == 2:
        tl.store(ptr, value, mask=mask, eviction_policy="evict_last")
    else:
        tl.store(ptr, value, mask=mask)


def pdl_kw() -> dict:
    """Launch keywords of a kernel: its ``PDL`` flag and, when on, Triton's ``launch_pdl``."""
    return {"PDL": _PDL["on"], "launch_pdl": True} if _PDL["on"] else {"PDL": 0}


def capture_graph(fn):
    """A ``torch.cuda.CUDAGraph`` of one ``fn()`` call. ``fn`` runs once on a side stream
    first, as capture requires (compiled kernels, warmed-up allocations); it must have fixed
    shapes and no host synchronisation."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, capture_error_mode="thread_local"):
        fn()
    return g


def event_seconds(fn, reps: int) -> float:
    """Mean device seconds per call of ``fn`` over ``reps`` back-to-back calls on the current
    stream, between two CUDA events (no warm-up: the caller runs it first)."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / reps


def fastest(candidates, warmup: int = 1, reps: int = 3):
    """Key of the fastest zero-argument callable in ``candidates`` (a dict), timed with CUDA events.

    Each candidate runs ``warmup`` times (compilation, autotuning), then ``reps`` times between
    two events (:func:`event_seconds`). Callers cache the answer per shape and never call this
    inside a CUDA-graph capture.
    """
    times = {}
    for name, fn in candidates.items():
        for _ in range(warmup):
            fn()
        times[name] = event_seconds(fn, reps)
    return min(times, key=times.get)
