"""Interleaved, repeated timing of compiled forward+backward steps: CUDA-graph replay and pipelined.

The harness (``run_cases.py``) times all candidate steps, then all baseline steps, and launches
each step from Python. At 4096^3 one compiled FP8 step is host-bound (~1 ms of host time for
~0.45 ms of GPU work), so the pipelined speed-up there measures the host's speed at that moment
(other jobs share its cores) more than the layers. This script measures each pair in two ways,
interleaved round by round so slow phases of the host or the GPU clocks hit both sides alike:

* ``graph``: the compiled step (same ``torch.compile`` model as the harness's cases) captured once
  into a CUDA graph and replayed: the GPU time of the kernels, no host launch cost. This is the
  fair comparison of two implementations at a host-bound size, and what a CUDA-graphed training
  loop pays.
* ``pipelined``: the compiled step called back to back from Python, as in the harness.

Every round times every kind in both modes (``--steps`` steps between two CUDA events, after one
untimed step), the kinds rotated by one place per round. Per pair and mode the JSON holds each
round's speed-up (baseline time / candidate time of that round) with median, quartiles, min and
max. Correctness first: each kind's eager step and its graph replay are compared with an fp32
reference (SQNR >= 20 dB for FP8, see ``bench_fp8_linear._check``).

``python packages/fp8-scaling/benchmarks/interleaved.py OUT_DIR [--plan PLAN] [--rounds R]
[--steps K] [--seconds S] [--budget B] [--device cuda|cpu]`` from the repository root;
``PLAN`` is ``SHAPE=CAND:BASE+CAND:BASE;SHAPE=...`` with ``SHAPE`` = ``MxKxN``. Writes
``OUT_DIR/fp8_interleaved.json`` after every shape (a shape starts only with
``--min-shape-seconds`` of the ``--budget`` left; its timing stops at the budget) and
``OUT_DIR/fp8_interleaved.png`` (box plots of the per-round speed-ups) at the end. On the CPU
(``--device cpu``, smoke test) ``graph`` is the plain step timed with ``perf_counter``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_PLAN = (
    "4096x4096x4096=ours:bf16+ours:torchao_tensorwise+ours_auto:bf16+ours_auto_tokens:bf16"
    "+torchao_tensorwise:bf16;8192x8192x8192=ours:bf16+ours:torchao_tensorwise;"
    "16384x8192x28672=ours:bf16+ours:torchao_tensorwise"
)


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_fp8_linear", HERE / "bench_fp8_linear.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse_plan(plan: str) -> list[tuple[tuple[int, int, int], list[tuple[str, str]]]]:
    """``"MxKxN=a:b+c:d;..."`` -> ``[((M, K, N), [("a", "b"), ("c", "d")]), ...]``."""
    out = []
    for part in filter(None, plan.split(";")):
        shape, pairs = part.split("=")
        m, k, n = (int(v) for v in shape.split("x"))
        out.append(((m, k, n), [tuple(p.split(":")) for p in pairs.split("+")]))
    return out


def _graphed(step, device: str):
    """Capture ``step`` (already compiled and warmed) into a CUDA graph; returns (replay, output
    of the captured call). On the CPU: (step, None)."""
    if device != "cuda":
        return step, None
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):  # warm-up and capture on one stream (no stale stream)
        y = step()

    def replay():
        g.replay()

    replay.keep = (g, step)  # the graph (and what it reads) lives as long as the replayer
    return replay, y


def _gpu_state() -> str | None:
    """SM clock, temperature, power draw and utilisation from nvidia-smi (None if absent)."""
    import subprocess

    q = "clocks.sm,clocks.max.sm,temperature.gpu,power.draw,utilization.gpu"
    try:
        r = subprocess.run(
            ["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _time(fn, steps: int, device: str) -> float:
    """Seconds per call of ``fn`` over ``steps`` back-to-back calls after one untimed call."""
    fn()
    if device != "cuda":
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        return (time.perf_counter() - t0) / steps
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(steps):
        fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / 1e3 / steps


def _stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) >= 2 else [xs[0]] * 3
    return {"median": statistics.median(xs), "q1": q[0], "q3": q[2], "min": xs[0], "max": xs[-1]}


def run_shape(bench, shape, pairs, args, deadline: float) -> dict:
    m, k, n = shape
    dev = args.device
    kinds = list(dict.fromkeys(kind for p in pairs for kind in p))
    rec: dict = {"kinds": {}, "pairs": {}, "sqnr_db": {}, "graph_sqnr_db": {}, "errors": {}}
    fns: dict[str, dict] = {}
    for kind in kinds:  # build, compile, check (eager) and capture each kind
        if time.monotonic() > deadline - 10:
            rec["errors"][kind] = "not built: budget spent"
            continue
        t0 = time.perf_counter()
        try:
            rec["sqnr_db"][kind] = bench._check(kind, m, k, n, dev)()
            step, x, model = bench._layer(kind, m, k, n, dev)
            fns[kind] = {"graph": None, "pipelined": step}
            f8 = model[0]
            rec["kinds"][kind] = {
                "module": type(f8).__name__,
                "uses_fp8": bool(f8.use_fp8_for(x)) if hasattr(f8, "use_fp8_for") else False,
                "graph_ms": [],
                "pipelined_ms": [],
            }
        except Exception as exc:  # e.g. torchao missing: the other pairs still run
            rec["errors"][kind] = f"{type(exc).__name__}: {str(exc)[:300]}"
            print(f"  {kind}: {rec['errors'][kind]}", flush=True)
            continue
        try:  # a failed capture loses only this kind's graph timing
            replay, y = _graphed(step, dev)
            if y is not None:  # the replay computes the same function (catches a lost kernel)
                replay()
                torch.cuda.synchronize()
                yr, dxr, dwr = bench._reference(m, k, n, dev)
                s = [bench._sqnr(y, yr), bench._sqnr(x.grad, dxr)]
                s.append(bench._sqnr(model[0].weight.grad, dwr))
                rec["graph_sqnr_db"][kind] = s
                if min(s) < 20:  # same bound as bench_fp8_linear._check
                    raise AssertionError(f"graph replay of {kind}: SQNR {s} dB below 20 dB")
            del y  # the captured call's autograd graph: not kept past the check
            fns[kind]["graph"] = replay
        except Exception as exc:
            rec["errors"][f"{kind} (graph)"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            print(f"  {kind} (graph): {rec['errors'][f'{kind} (graph)']}", flush=True)
        rec["kinds"][kind]["setup_s"] = round(time.perf_counter() - t0, 1)
        print(f"  {kind}: ready in {time.perf_counter() - t0:.1f} s", flush=True)
    live = [kd for kd in kinds if kd in fns]
    t_end = min(deadline, time.monotonic() + args.seconds)
    rounds = 0
    rec["gpu_state"] = {"before": _gpu_state() if dev == "cuda" else None}
    while rounds < args.rounds and time.monotonic() < t_end and live:
        order = live[rounds % len(live) :] + live[: rounds % len(live)]
        for kind in order:
            for mode in ("graph", "pipelined"):
                if fns[kind][mode] is None:
                    continue
                dt = _time(fns[kind][mode], args.steps, dev)
                rec["kinds"][kind][f"{mode}_ms"].append(round(1e3 * dt, 5))
        rounds += 1
    rec["rounds"] = rounds
    if dev == "cuda":
        rec["gpu_state"]["after"] = _gpu_state()
        print(f"  GPU (SM clock, max, temperature, power, utilisation): {rec['gpu_state']}")
    for cand, base in pairs:
        if cand not in fns or base not in fns:
            continue
        key = f"{cand}/{base}"
        rec["pairs"][key] = {}
        for mode in ("graph", "pipelined"):
            c, b = rec["kinds"][cand][f"{mode}_ms"], rec["kinds"][base][f"{mode}_ms"]
            ratios = [bb / cc for cc, bb in zip(c, b)]
            if ratios:
                rec["pairs"][key][mode] = {
                    **_stats(ratios),
                    "speedups": [round(r, 4) for r in ratios],
                    "candidate_ms_median": statistics.median(c),
                    "baseline_ms_median": statistics.median(b),
                }
    return rec


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = [s for s, r in result["shapes"].items() if r["pairs"]]
    if not shapes:
        return
    fig, axes = plt.subplots(1, len(shapes), figsize=(5.5 * len(shapes), 4.2), squeeze=False)
    for ax, shape in zip(axes[0], shapes):
        data, labels = [], []
        for key, modes in result["shapes"][shape]["pairs"].items():
            for mode, st in modes.items():
                data.append(st["speedups"])
                labels.append(f"{key}\n{mode}")
        try:  # matplotlib >= 3.10
            ax.boxplot(data, orientation="horizontal")
        except TypeError:
            ax.boxplot(data, vert=False)
        ax.set_yticks(range(1, len(labels) + 1), labels, fontsize=6)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.axvline(0.98, color="r", lw=0.6, ls=":")  # auto_filter: never > 2 % slower
        if max(max(d) for d in data) > 1.3:
            ax.axvline(1.75, color="g", lw=0.6, ls=":")  # target over bf16 at large shapes
        ax.set_xlabel("speed-up per round (baseline / candidate)")
        ax.set_title(f"{shape} ({result['device_name']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict) -> str:
    """The pairs of a result as a markdown table (speed-ups: median [q1, q3] {min, max})."""
    lines = [
        f"Interleaved timing on {result['device_name']}, {result['date']}, torch "
        f"{result['torch']}: speed-up = baseline / candidate per round, median [q1, q3] "
        "{min, max} over the rounds; step times are medians.",
        "",
        "| shape | candidate / baseline | rounds | CUDA-graph replay | graph step (ms) "
        "| pipelined | pipelined step (ms) |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(st):
        if st is None:
            return "–", "–"
        sp = f"**{st['median']:.3f}×** [{st['q1']:.3f}, {st['q3']:.3f}]"
        sp += f" {{{st['min']:.3f}, {st['max']:.3f}}}"
        return sp, f"{st['candidate_ms_median']:.3f} / {st['baseline_ms_median']:.3f}"

    for shape, rec in result["shapes"].items():
        for key, modes in rec["pairs"].items():
            g, gt = cell(modes.get("graph"))
            p, pt = cell(modes.get("pipelined"))
            lines.append(f"| {shape} | {key} | {rec['rounds']} | {g} | {gt} | {p} | {pt} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="output folder (with --table: a result JSON)")
    ap.add_argument("--table", action="store_true", help="print the markdown table of OUT")
    ap.add_argument("--plan", default=DEFAULT_PLAN)
    ap.add_argument("--rounds", type=int, default=40, help="rounds per shape (at most)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per sample")
    ap.add_argument("--seconds", type=float, default=15.0, help="timing seconds per shape (max)")
    ap.add_argument("--budget", type=float, default=150.0, help="seconds for the whole script")
    ap.add_argument(
        "--min-shape-seconds", type=float, default=35.0,
        help="start a shape only with this much of the budget left",
    )  # fmt: skip
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown(json.loads(args.out.read_text())), end="")
        return 0
    # one static compile per shape and model on both sides (a second shape through the same
    # code would otherwise be recompiled with symbolic sizes, differently for each side)
    torch._dynamo.config.automatic_dynamic_shapes = False
    bench = _bench_module()
    start = time.monotonic()
    deadline = start + args.budget
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    result = {
        "device_name": name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "shapes": {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / "fp8_interleaved.json"
    for shape, pairs in parse_plan(args.plan):
        if time.monotonic() > deadline - args.min_shape_seconds:
            print(f"budget nearly spent: {shape} not started", flush=True)
            break
        label = "x".join(map(str, shape))
        print(f"== {label}: {', '.join(f'{c}/{b}' for c, b in pairs)}", flush=True)
        rec = run_shape(bench, shape, pairs, args, deadline)
        result["shapes"][label] = rec
        out_json.write_text(json.dumps(result, indent=1) + "\n")
        for key, modes in rec["pairs"].items():
            for mode, st in modes.items():
                print(
                    f"  {key:<40} {mode:<9} speed-up median {st['median']:.3f} "
                    f"[q1 {st['q1']:.3f}, q3 {st['q3']:.3f}; min {st['min']:.3f}, "
                    f"max {st['max']:.3f}] over {rec['rounds']} rounds "
                    f"({st['candidate_ms_median']:.3f} vs {st['baseline_ms_median']:.3f} ms)",
                    flush=True,
                )
        for kind in list(bench._CACHE):  # free this shape's models and graphs
            if isinstance(kind, tuple) and tuple(kind[1:4]) == shape:
                del bench._CACHE[kind]
        if args.device == "cuda":
            torch.cuda.empty_cache()
    (args.out / "fp8_interleaved.md").write_text(markdown(result))
    try:
        plot(result, args.out / "fp8_interleaved.png")
    except Exception as exc:  # the JSON is what matters
        print(f"plot failed: {exc}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
