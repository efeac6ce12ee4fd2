"""Run the fp8-scaling benchmark cases one at a time through the harness, writing after each.

``python packages/fp8-scaling/benchmarks/run_cases.py OUT_DIR case1,case2,... [DEVICE]`` (from the
repo root) writes ``OUT_DIR/fp8_cases.json`` and ``.md`` after every case, so a time limit that
stops the process loses only the case in flight.

``FP8_ROUNDS=R`` (default 1) runs the whole case list R times in turn (round 2 starts after
round 1 has measured every case, so the rounds see different moments of the GPU's clocks and of
the host's load); rounds after the first get ids ending in ``#2``, ``#3``, ... and
``OUT_DIR/fp8_spread.json`` lists, per case, the speed-up of every round with their median,
minimum and maximum (rewritten after every case as well).
"""

import json
import os
import statistics
import sys
from pathlib import Path

from monobench._runner import find_root, run_package, write_run

out, names = Path(sys.argv[1]), sys.argv[2].split(",")
device = sys.argv[3] if len(sys.argv) > 3 else "cuda"
rounds = max(1, int(os.environ.get("FP8_ROUNDS", "1")))
root = find_root()
merged = None
spread: dict[str, dict] = {}


def _write_spread() -> None:
    rows = {}
    for rid, d in spread.items():
        sp = [s for s in d["speedups"] if s is not None]
        rows[rid] = {
            **d,
            "median": statistics.median(sp) if sp else None,
            "min": min(sp) if sp else None,
            "max": max(sp) if sp else None,
        }
    (out / "fp8_spread.json").write_text(json.dumps(rows, indent=1) + "\n")


for rnd in range(1, rounds + 1):
    for name in names:
        try:
            run = run_package(
                root,
                "fp8-scaling",
                device=device,
                only=name,
                quick=os.environ.get("FP8_QUICK") == "1",  # tiny sizes (CPU smoke test)
                warmup=3,
                repeats=int(os.environ.get("FP8_REPEATS", "20")),
            )
        except Exception as exc:  # e.g. a case not offered on this device
            print(f"{name}: skipped ({str(exc)[:100]})", flush=True)
            continue
        for r in run["results"]:
            base_id = r["id"]
            if rnd > 1:
                r["id"] = f"{base_id}#{rnd}"
            d = spread.setdefault(base_id, {"speedups": [], "candidate_ms": [], "baseline_ms": []})
            d["speedups"].append(r.get("speedup"))
            for side in ("candidate", "baseline"):
                t = (r.get(side) or {}).get("median_s")
                d[f"{side}_ms"].append(None if t is None else round(1e3 * t, 4))
        if merged is None:
            merged = run
        else:
            merged["results"] += run["results"]
        for path in write_run(merged, out):
            path.replace(out / f"fp8_cases{path.suffix}")
        _write_spread()
        for r in run["results"]:
            sp = r.get("speedup")
            print(
                f"{r['id']:<58} {r['status']:<5} speed-up {sp if sp is None else round(sp, 3)}",
                flush=True,
            )

if rounds > 1:
    print("== spread over rounds (speed-up: median [min, max])", flush=True)
    for rid, d in json.loads((out / "fp8_spread.json").read_text()).items():
        if d["median"] is not None:
            print(f"{rid:<58} {d['median']:.3f} [{d['min']:.3f}, {d['max']:.3f}]", flush=True)
