"""Where does the step time go? Host vs device profile of the benchmark's two training steps.

Builds the unit-scaled and the plain-torch decoder of ``bench_unit_scaling.py`` (compiled the
same way, ``UNIT_SCALING_BENCH_COMPILE`` honoured), then for each model measures per step:

* ``wall_ms``: synchronise, step, synchronise (what the benchmark times), over interleaved
  blocks of steps of the two models (median, IQR, min);
* ``host_ms``: time until ``step()`` returns (Python, dispatch, launches; a hidden host sync
  shows up as ``host_ms`` close to ``wall_ms``);
* with ``torch.profiler`` over a few steps: GPU busy time (union of kernel/memcpy/memset
  intervals), kernels per step, kernel launches, top-level aten ops, autograd nodes, dynamo
  cache lookups and their host time, and host synchronisations.

The JSON ends with the unit-scaled minus plain-torch differences and a verdict: ``device`` when
the GPU busy time explains most of the wall-time gap, ``host`` otherwise.
Usage: ``python profile_step.py --device cuda --width 512 --batch 16 --seq 1024 --out p.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time

import torch
from torch._dynamo.utils import counters
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_unit_scaling as bench

_SYNC_NAMES = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timings(steps_by_label, device: str, blocks: int, per_block: int):  # type: ignore[no-untyped-def]
    """Interleaved timing: blocks of ``per_block`` steps alternate between the models, so a
    slow phase of a shared machine hits both alike."""
    host: dict[str, list[float]] = {k: [] for k in steps_by_label}
    wall: dict[str, list[float]] = {k: [] for k in steps_by_label}
    for _ in range(blocks):
        for label, step in steps_by_label.items():
            for _ in range(per_block):
                _sync(device)
                t0 = time.perf_counter()
                step()
                host[label].append(time.perf_counter() - t0)
                _sync(device)
                wall[label].append(time.perf_counter() - t0)
    out = {}
    for label in steps_by_label:
        w, h = wall[label], host[label]
        q = statistics.quantiles(w, n=4) if len(w) >= 4 else [min(w), 0.0, max(w)]
        out[label] = {
            "steps_timed": len(w),
            "wall_ms": 1e3 * statistics.median(w),
            "wall_iqr_ms": 1e3 * (q[2] - q[0]),
            "wall_min_ms": 1e3 * min(w),
            "host_ms": 1e3 * statistics.median(h),
            "host_min_ms": 1e3 * min(h),
        }
    return out


def _union_us(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _profile(step, device: str, steps: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    _sync(device)
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
            _sync(device)  # one synchronisation per step: ours, subtracted below
    events = prof.events()
    gpu = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    cpu = [e for e in events if e.device_type != torch.autograd.DeviceType.CUDA]
    names = collections.Counter(e.name for e in cpu)
    lookups = [e for e in cpu if e.name == "TorchDynamo Cache Lookup"]
    kernels = collections.Counter(e.name for e in gpu)
    busy = _union_us([(e.time_range.start, e.time_range.end) for e in gpu])
    syncs = sum(v for k, v in names.items() if k in _SYNC_NAMES) - (
        steps if device == "cuda" else 0
    )
    per = 1.0 / steps
    return {
        "gpu_busy_ms": busy * 1e-3 * per,
        "kernels_per_step": len(gpu) * per,
        "launches_per_step": sum(v for k, v in names.items() if "LaunchKernel" in k) * per,
        "aten_ops_per_step": sum(v for k, v in names.items() if k.startswith("aten::")) * per,
        "autograd_nodes_per_step": names["autograd::engine::evaluate_function"] * per
        + sum(v for k, v in names.items() if k.startswith("autograd::engine::evaluate_function:"))
        * per,
        "compiled_region_calls_per_step": sum(
            v for k, v in names.items() if k.startswith("Torch-Compiled Region")
        )
        * per,
        "dynamo_lookup_us_per_step": sum(e.cpu_time_total for e in lookups) * per,
        "extra_host_syncs_per_step": syncs * per,
        "dtoh_copies_per_step": sum(
            v for k, v in names.items() if k.startswith("cudaMemcpy") and "Async" not in k
        )
        * per,
        "top_kernels": [
            [k, round(v * per, 2)] for k, v in sorted(kernels.items(), key=lambda kv: -kv[1])[:12]
        ],
        "_kernel_counts": kernels,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--blocks", type=int, default=10, help="interleaved blocks per model")
    p.add_argument("--per-block", type=int, default=5, help="timed steps per block")
    p.add_argument("--profile-steps", type=int, default=5)
    p.add_argument("--eager", action="store_true", help="profile the eager step instead")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    res: dict[str, object] = {
        "setup": {
            "device": a.device,
            "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None,
            "width": a.width,
            "batch": a.batch,
            "seq": a.seq,
            "compiled": not a.eager,
            "compile_mode": bench.COMPILE_MODE,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
    }
    steps, labels = {}, (("unit_scaling", True), ("torch", False))
    for label, unit in labels:
        t0 = time.perf_counter()
        _, steps[label] = bench._setup(a.width, a.batch, a.seq, a.device, unit, not a.eager)
        breaks = sum(counters["graph_break"].values())
        for _ in range(3):  # compile + warm-up
            steps[label]()
        _sync(a.device)
        res[label] = {
            "setup_s": time.perf_counter() - t0,
            "graph_breaks": sum(counters["graph_break"].values()) - breaks,
        }
        print(f"{label:13s} compiled and warmed up in {res[label]['setup_s']:.1f} s", flush=True)
    timed = _timings(steps, a.device, a.blocks, a.per_block)
    for label, _ in labels:
        r = res[label]
        assert isinstance(r, dict)
        r.update(timed[label])
        try:  # a profiler failure (e.g. no CUPTI) must not lose the timings above
            r.update(_profile(steps[label], a.device, a.profile_steps))
        except Exception as exc:
            r.update(profile_error=f"{type(exc).__name__}: {exc}", gpu_busy_ms=float("nan"))
            r.update(kernels_per_step=float("nan"), aten_ops_per_step=float("nan"))
            r.update(autograd_nodes_per_step=float("nan"), _kernel_counts=collections.Counter())
        print(
            f"{label:13s} wall {r['wall_ms']:.3f} ms (IQR {r['wall_iqr_ms']:.3f}, min "
            f"{r['wall_min_ms']:.3f})  host {r['host_ms']:.3f} ms  gpu busy "
            f"{r['gpu_busy_ms']:.3f} ms  kernels/step {r['kernels_per_step']:.0f}  aten ops/step "
            f"{r['aten_ops_per_step']:.0f}  autograd nodes {r['autograd_nodes_per_step']:.0f}",
            flush=True,
        )
    u, t = res["unit_scaling"], res["torch"]
    assert isinstance(u, dict)
    assert isinstance(t, dict)
    diff = {
        k: u[k] - t[k]
        for k in u
        if isinstance(u[k], float) and isinstance(t.get(k), float) and k != "setup_s"
    }
    ku, kt = u.pop("_kernel_counts"), t.pop("_kernel_counts")
    diff["kernels_only_or_more_in_unit_scaling"] = {
        k: round((ku[k] - kt.get(k, 0)) / a.profile_steps, 2) for k in ku if ku[k] > kt.get(k, 0)
    }
    diff["kernels_only_or_more_in_torch"] = {
        k: round((kt[k] - ku.get(k, 0)) / a.profile_steps, 2) for k in kt if kt[k] > ku.get(k, 0)
    }
    gap, busy_gap = diff["wall_ms"], diff["gpu_busy_ms"]
    if a.device != "cuda":
        verdict = "cpu run: wall = host, no device split"
    elif gap <= 0:
        verdict = "no gap"
    elif busy_gap != busy_gap:  # NaN: the profiler failed
        verdict = "unknown (profiler failed)"
    else:
        verdict = "device" if busy_gap >= 0.5 * gap else "host"
    diff["verdict"] = verdict
    res["unit_minus_torch"] = diff
    print(
        f"unit - torch: wall {gap:+.3f} ms, gpu busy {busy_gap:+.3f} ms, host "
        f"{diff['host_ms']:+.3f} ms, kernels/step {diff['kernels_per_step']:+.1f} -> {verdict}"
    )
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1, default=str)


if __name__ == "__main__":
    main()
