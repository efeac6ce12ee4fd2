"""Kernel timeline of one compiled forward+backward step replayed from a CUDA graph.

``python packages/fp8-scaling/benchmarks/step_timeline.py OUT_DIR [--shapes MxKxN,...]
[--kinds ours,bf16] [--replays R] [--device cuda|cpu]`` from the repository root.

Per shape and kind (the layers of ``bench_fp8_linear._layer``), the compiled step is captured
into a CUDA graph (as ``interleaved.py`` does), replayed ``R`` times under ``torch.profiler``,
and every GPU activity of the replays is listed in launch order: per position in the step the
kernel name, its median device time (µs) and the median idle gap before it. The sums answer
where a step's time goes: GEMMs, casts, small kernels, and the idle time between kernels, which
a graph replay should keep near zero. The step's wall time per replay (CUDA events over
5 x 10 replays just before the profiled ones) and the profiled span of one replay are stored
next to them; a wall time above the span means idle time between replays or a clock change.

Writes ``OUT_DIR/fp8_timeline.json``. On the CPU (smoke test, ``--device cpu``) the step runs
eagerly and the timeline lists the profiler's CPU ops instead.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
from pathlib import Path

import torch
from interleaved import _bench_module, _gpu_state, _graphed, _time

GEMM_HINTS = ("gemm", "nvjet", "sm90_xmma", "cutlass", "_mm")
CAST_HINTS = ("cast", "spec", "amax")


def _kind_of(name: str) -> str:
    low = name.lower()
    if any(h in low for h in GEMM_HINTS):
        return "gemm"
    if any(h in low for h in CAST_HINTS):
        return "cast"
    return "other"


def _activities(prof, device: str) -> list[dict]:
    """GPU activities (kernels, memsets, copies) of a profile, sorted by start time (µs)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    cats = ("kernel", "gpu_memset", "gpu_memcpy") if device == "cuda" else ("cpu_op",)
    out = [
        {"name": e["name"], "ts": float(e["ts"]), "dur": float(e.get("dur", 0.0))}
        for e in events
        if e.get("ph") == "X" and e.get("cat") in cats
    ]
    if device != "cuda":  # top-level ops only
        out = [e for e in out if e["name"].startswith("aten::")]
    return sorted(out, key=lambda e: e["ts"])


def timeline(replay, replays: int, device: str) -> dict:
    """Profile ``replays`` calls of ``replay``; per step position: name, median µs and gap."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CUDA] if device == "cuda" else [ProfilerActivity.CPU]
    replay()
    if device == "cuda":
        torch.cuda.synchronize()
    with profile(activities=acts) as prof:
        for _ in range(replays):
            replay()
        if device == "cuda":
            torch.cuda.synchronize()
    ev = _activities(prof, device)
    per = len(ev) // replays
    if per == 0 or len(ev) % replays:
        return {
            "error": f"{len(ev)} activities for {replays} replays",
            "names": [e["name"] for e in ev[:40]],
        }
    rows = []
    for i in range(per):
        durs = [ev[r * per + i]["dur"] for r in range(replays)]
        gaps = [
            ev[r * per + i]["ts"] - (ev[r * per + i - 1]["ts"] + ev[r * per + i - 1]["dur"])
            for r in range(replays)
            if i > 0
        ]
        name = ev[i]["name"]
        rows.append({
            "name": name[:120], "kind": _kind_of(name), "us": statistics.median(durs),
            "gap_before_us": statistics.median(gaps) if gaps else 0.0,
        })  # fmt: skip
    spans = [
        ev[r * per + per - 1]["ts"] + ev[r * per + per - 1]["dur"] - ev[r * per]["ts"]
        for r in range(replays)
    ]
    sums: dict[str, float] = {}
    for r in rows:
        sums[r["kind"]] = sums.get(r["kind"], 0.0) + r["us"]
    return {
        "activities_per_step": per,
        "rows": rows,
        "sum_us_by_kind": {k: round(v, 2) for k, v in sums.items()},
        "sum_gaps_us": round(sum(r["gap_before_us"] for r in rows), 2),
        "span_us_median": statistics.median(spans),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--shapes", default="8192x8192x8192")
    p.add_argument("--kinds", default="ours,bf16")
    p.add_argument("--replays", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bench = _bench_module()
    result = {
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "shapes": {},
    }
    for shape in args.shapes.split(","):
        m, k, n = (int(v) for v in shape.split("x"))
        res = result["shapes"].setdefault(shape, {})
        for kind in args.kinds.split(","):
            step = bench._layer(kind, m, k, n, args.device)[0]
            for _ in range(3):
                step()
            replay, _y = _graphed(step, args.device)
            wall = [_time(replay, 10, args.device) * 1e6 for _ in range(5)]
            res[kind] = {
                "wall_us_median": statistics.median(wall),
                **timeline(replay, args.replays, args.device),
            }
            res[kind]["gpu_state"] = _gpu_state()
            t = res[kind]
            print(
                f"{shape} {kind}: wall {t['wall_us_median']:.1f} µs, "
                f"span {t.get('span_us_median', 0):.1f} µs, "
                f"by kind {t.get('sum_us_by_kind')}, gaps {t.get('sum_gaps_us')} µs",
                flush=True,
            )
            for r in t.get("rows", []):
                print(
                    f"    {r['us']:9.2f} µs  gap {r['gap_before_us']:6.2f}  "
                    f"{r['kind']:5s} {r['name'][:90]}"
                )
            (args.out / "fp8_timeline.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
