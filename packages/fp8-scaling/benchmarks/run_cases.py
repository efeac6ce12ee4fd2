"""Run the fp8-scaling benchmark cases one at a time through the harness, writing after each.

``python packages/fp8-scaling/benchmarks/run_cases.py OUT_DIR case1,case2,... [DEVICE]`` (from the
repo root) writes ``OUT_DIR/fp8_cases.json`` and ``.md`` after every case, so a time limit that
stops the process loses only the case in flight.
"""

import os
import sys
from pathlib import Path

from monobench._runner import find_root, run_package, write_run

out, names = Path(sys.argv[1]), sys.argv[2].split(",")
device = sys.argv[3] if len(sys.argv) > 3 else "cuda"
root = find_root()
merged = None
for name in names:
    try:
        run = run_package(
            root,
            "fp8-scaling",
            device=device,
            only=name,
            quick=os.environ.get("FP8_QUICK") == "1",  # tiny sizes (CPU smoke test)
            warmup=3,
            repeats=20,
        )
    except Exception as exc:  # e.g. a case not offered on this device
        print(f"{name}: skipped ({exc})", flush=True)
        continue
    if merged is None:
        merged = run
    else:
        merged["results"] += run["results"]
    for path in write_run(merged, out):
        path.replace(out / f"fp8_cases{path.suffix}")
    for r in run["results"]:
        sp = r.get("speedup")
        print(
            f"{r['id']:<58} {r['status']:<5} speed-up {sp if sp is None else round(sp, 3)}",
            flush=True,
        )
