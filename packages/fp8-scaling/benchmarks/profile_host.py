"""Host cost of one compiled forward+backward step: host seconds, kernel launches, top CPU ops.

``python packages/fp8-scaling/benchmarks/profile_host.py OUT.json [--kinds ours,bf16,...]
[--shapes 4096x4096x4096,...] [--steps 50] [--budget SECONDS] [--device cuda]`` (from the
repository root, with ``packages/*/src`` and ``tools/*/src`` on ``PYTHONPATH``).

For every layer kind of ``bench_fp8_linear.py`` (``ours``, ``bf16``, ``torchao_tensorwise``, ...)
and shape (M tokens, K in, N out), after the warm-up (compilation):

* ``host_s_per_step``: ``time.perf_counter`` over ``--steps`` steps issued without any device
  synchronisation (split into the forward call and the ``backward`` call), then one sync;
  ``wall_s_per_step`` is the time to that sync, ``device_s_per_step`` the CUDA-event span of
  the same loop (when the host is the bottleneck, device time ~ host time).
* ``launches_per_step`` (``cudaLaunchKernel``-type runtime calls) and ``kernels_per_step``
  (device kernels) from ``torch.profiler`` over a few steps, with the kernel names.
* ``kernel_table``: the GPU kernels of a step, largest first: name, launches and device µs per
  step, share of the step's summed kernel time (printed after each kind and shape).
* ``top_cpu_ops``: the CPU ops with the largest self time per step.
* ``py_top_own``: the Python functions with the most own time per step (cProfile; ``--no-py``
  skips it).
* dynamo's graph-break and recompilation counters while the layer was compiled.

The JSON is rewritten after every (kind, shape), so a time limit keeps what was measured.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

_LAUNCH_NAMES = (
    "cudaLaunchKernel",
    "cudaLaunchKernelExC",
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cudaLaunchCooperativeKernel",
    "cudaGraphLaunch",
)


def _bench_module():
    path = Path(__file__).with_name("bench_fp8_linear.py")
    spec = importlib.util.spec_from_file_location("_fp8_bench_linear_profile", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _host_loop(cm, x, dy, model, steps: int, device: str) -> dict:
    """Issue ``steps`` forward+backward steps back to back; host and device time per step."""
    fwd = bwd = 0.0
    ev0 = ev1 = None
    _sync(device)
    if device == "cuda":
        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ev0.record()
    t0 = time.perf_counter()
    for _ in range(steps):
        x.grad = None
        model[0].weight.grad = None
        a = time.perf_counter()
        y = cm(x)
        b = time.perf_counter()
        y.backward(dy)
        fwd += b - a
        bwd += time.perf_counter() - b
    t1 = time.perf_counter()
    if ev1 is not None:
        ev1.record()
    _sync(device)
    t2 = time.perf_counter()
    out = {
        "host_s_per_step": (t1 - t0) / steps,
        "host_fwd_s_per_step": fwd / steps,
        "host_bwd_s_per_step": bwd / steps,
        "wall_s_per_step": (t2 - t0) / steps,
    }
    if ev1 is not None:
        out["device_s_per_step"] = ev0.elapsed_time(ev1) / 1e3 / steps
    return out


def _profile(step, steps: int, device: str, top: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    _sync(device)
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        _sync(device)
    launches = 0
    kernels: collections.Counter = collections.Counter()
    for e in prof.events():
        if e.name in _LAUNCH_NAMES:
            launches += 1
        elif getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA:
            kernels[e.name] += 1
    rows = []
    for a in prof.key_averages():
        if a.self_cpu_time_total <= 0:
            continue
        rows.append(
            {
                "name": a.key,
                "calls_per_step": a.count / steps,
                "self_cpu_us_per_step": a.self_cpu_time_total / steps,
                "cpu_total_us_per_step": a.cpu_time_total / steps,
            }
        )
    rows.sort(key=lambda r: -r["self_cpu_us_per_step"])
    return {
        "kernel_table": _kernel_table(prof, steps),
        "profiled_steps": steps,
        "launches_per_step": launches / steps,
        "kernels_per_step": sum(kernels.values()) / steps,
        "kernel_names": {k[:120]: v / steps for k, v in kernels.most_common(40)},
        "top_cpu_ops": rows[:top],
    }


def _kernel_table(prof, steps: int) -> list[dict]:
    """GPU kernels of the profiled steps: name, launches and device time (µs) per step, share of
    the step's summed kernel time; largest first."""
    rows = []
    for a in prof.key_averages():
        if getattr(a, "device_type", None) != torch.autograd.DeviceType.CUDA:
            continue
        us = getattr(a, "self_device_time_total", None)
        if us is None:  # torch < 2.4
            us = a.self_cuda_time_total
        rows.append({"name": a.key[:160], "count_per_step": a.count / steps, "us_per_step": us})
    total = sum(r["us_per_step"] for r in rows) / steps or 1.0
    for r in rows:
        r["us_per_step"] /= steps
        r["share"] = r["us_per_step"] / total
    rows.sort(key=lambda r: -r["us_per_step"])
    return rows[:30]


def _print_kernel_table(rec: dict) -> None:
    table = rec.get("kernel_table") or []
    total = sum(r["us_per_step"] for r in table)
    print(f"    GPU kernels per step ({total:.0f} us summed):", flush=True)
    for r in table[:12]:
        print(
            f"    {r['us_per_step']:9.1f} us {100 * r['share']:5.1f} % x{r['count_per_step']:.0f} "
            f"{r['name'][:90]}",
            flush=True,
        )


def _py_profile(step, steps: int, device: str, top: int) -> dict:
    """cProfile of ``steps`` steps: the Python functions with the most own time per step
    (inductor's wrapper code, kernel launchers, AOTAutograd's runtime wrappers, ...)."""
    import cProfile
    import pstats

    _sync(device)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    _sync(device)
    prof.disable()
    st = pstats.Stats(prof)
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append(
            {
                "function": f"{Path(file).name}:{line}:{fn}",
                "calls_per_step": nc / steps,
                "own_us_per_step": 1e6 * tt / steps,
                "cum_us_per_step": 1e6 * ct / steps,
            }
        )
    rows.sort(key=lambda r: -r["own_us_per_step"])
    return {"py_top_own": rows[:top], "py_total_own_us_per_step": 1e6 * st.total_tt / steps}


def _dynamo_counters() -> dict:
    from torch._dynamo.utils import counters

    return {
        "graph_breaks": {str(k)[:200]: v for k, v in counters["graph_break"].items()},
        "stats": dict(counters["stats"]),
        "recompiles": {str(k)[:200]: v for k, v in counters.get("recompiles", {}).items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--kinds", default="ours,bf16,torchao_tensorwise")
    p.add_argument("--shapes", default="4096x4096x4096,8192x8192x8192")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--profile-steps", type=int, default=5)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--budget", type=float, default=120.0, help="no new (kind, shape) after this")
    p.add_argument("--device", default="cuda")
    p.add_argument("--no-py", action="store_true", help="skip the cProfile pass (large shapes)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    bench = _bench_module()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",") if s]
    result: dict = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "steps": args.steps,
        "runs": [],
    }
    for m, k, n in shapes:
        for kind in [s for s in args.kinds.split(",") if s]:
            if time.perf_counter() - start > args.budget:
                print(f"budget spent: skip {kind} {m}x{k}x{n}", flush=True)
                continue
            rec: dict = {"kind": kind, "m": m, "k": k, "n": n}
            try:
                torch._dynamo.utils.counters.clear()
                t = time.perf_counter()
                step, x, model = bench._layer(kind, m, k, n, args.device)
                for _ in range(3):  # compile + warm-up
                    step()
                _sync(args.device)
                rec["warmup_s"] = time.perf_counter() - t
                rec["dynamo"] = _dynamo_counters()
                if getattr(step, "plain", False):  # forward / backward host time apart
                    rec.update(_host_loop(step.cm, x, step.dy, model, args.steps, args.device))
                else:
                    rec.update(_host_loop_step(step, args.steps, args.device))
                rec.update(_profile(step, args.profile_steps, args.device, args.top))
                if not args.no_py:
                    rec.update(_py_profile(step, args.profile_steps, args.device, args.top + 5))
            except Exception as exc:  # e.g. torchao missing: record and go on
                rec["error"] = f"{type(exc).__name__}: {exc}"[:500]
            result["runs"].append(rec)
            args.out.write_text(json.dumps(result, indent=1))
            hs = rec.get("host_s_per_step")
            print(
                f"{kind:>22} {m}x{k}x{n}: "
                + (
                    f"host {1e6 * hs:7.1f} us/step (fwd "
                    f"{1e6 * rec.get('host_fwd_s_per_step', float('nan')):.1f}, bwd "
                    f"{1e6 * rec.get('host_bwd_s_per_step', float('nan')):.1f}), wall "
                    f"{1e6 * rec['wall_s_per_step']:.1f}, device "
                    f"{1e6 * rec.get('device_s_per_step', float('nan')):.1f} us/step, "
                    f"launches {rec['launches_per_step']:.1f}, kernels "
                    f"{rec['kernels_per_step']:.1f}, graph breaks "
                    f"{sum(rec['dynamo']['graph_breaks'].values())}"
                    if hs is not None
                    else rec.get("error", "?")
                ),
                flush=True,
            )
            if args.device == "cuda" and "kernel_table" in rec:
                _print_kernel_table(rec)
    return 0


def _host_loop_step(step, steps: int, device: str) -> dict:
    """:func:`_host_loop` for a benchmark ``step()`` (forward+backward in one call)."""
    _sync(device)
    ev0 = ev1 = None
    if device == "cuda":
        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ev0.record()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    t1 = time.perf_counter()
    if ev1 is not None:
        ev1.record()
    _sync(device)
    t2 = time.perf_counter()
    out = {"host_s_per_step": (t1 - t0) / steps, "wall_s_per_step": (t2 - t0) / steps}
    if ev1 is not None:
        out["device_s_per_step"] = ev0.elapsed_time(ev1) / 1e3 / steps
    return out


if __name__ == "__main__":
    sys.exit(main())
