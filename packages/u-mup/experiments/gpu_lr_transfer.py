"""LR transfer on one GPU: many small runs at once (reference §3.1, H200 reproduction).

Runs ``parametrization × width × LR`` eager bf16 trainings in ``--workers`` processes sharing the
GPU (small models are launch-bound, so concurrency fills the GPU), each worker appending to its
own JSONL, then writes ``lr_transfer_gpu.json`` and ``lr_transfer_gpu.png`` to ``--out``.
Workers stop starting new runs after ``--budget-s``; unfinished grid points are listed.

    python packages/u-mup/experiments/gpu_lr_transfer.py --out OUT [--smoke]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path


def _worker(rank: int, queue, out_dir: str, deadline: float) -> None:
    import torch

    torch.set_num_threads(1)
    from u_mup._data import stdlib_corpus
    from u_mup._store import SweepStore
    from u_mup._train import RunSpec, train_run

    src = stdlib_corpus()
    store = SweepStore(Path(out_dir) / f"worker{rank}.jsonl")
    while time.time() < deadline:
        try:
            d = queue.get_nowait()
        except Exception:
            return
        spec = RunSpec.from_dict(d)
        t = time.time()
        rec = train_run(spec, source=src)
        store.append(rec)
        print(
            f"[w{rank}] {spec.parametrization} width={spec.width} lr=2^{_log2(spec.lr):+d} "
            f"loss={rec['loss']} ({time.time() - t:.0f} s)",
            flush=True,
        )


def _log2(x: float) -> int:
    import math

    return round(math.log2(x))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run to test the plumbing")
    ap.add_argument("--steps", type=int, default=int(os.environ.get("UMUP_GPU_STEPS", 1000)))
    ap.add_argument("--widths", default="128,256,512,1024")
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--workers", type=int, default=int(os.environ.get("UMUP_GPU_WORKERS", 14)))
    ap.add_argument("--budget-s", type=float, default=float(os.environ.get("UMUP_GPU_BUDGET", 140)))
    a = ap.parse_args()
    from dataclasses import asdict

    from u_mup._train import RunSpec

    widths = [int(w) for w in a.widths.split(",")]
    grids = {"umup": range(-4, 5), "sp": range(-13, -4)}
    base = {
        "n_layers": a.n_layers,
        "steps": a.steps,
        "batch_size": 16,
        "seq_len": 256,
        "head_dim": 64,
        "dtype": "bf16",
        "device": "cuda",
        "warmup": 0.1,
    }
    if a.smoke:
        widths = [32, 64]
        grids = {"umup": range(-1, 1), "sp": range(-7, -5)}
        base.update(
            n_layers=1, steps=3, batch_size=2, seq_len=16, head_dim=16, dtype="fp32", device="cpu"
        )
        a.workers = 2

    # centre-out LR order, all widths and both parametrizations per LR: if the budget runs out,
    # only the grid's extreme LRs are missing (the argmins are near the centre)
    def centre_out(g):
        g = list(g)
        mid = len(g) // 2
        return sorted(g, key=lambda e: (abs(g.index(e) - mid), e))

    order = {p: centre_out(g) for p, g in grids.items()}
    specs = [
        RunSpec(parametrization=p, width=w, lr=2.0 ** order[p][i], **base)
        for i in range(max(len(v) for v in order.values()))
        for w in sorted(widths, reverse=True)
        for p in grids
        if i < len(order[p])
    ]
    out = Path(a.out)
    tmp = out / "_runs"
    tmp.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    for s in specs:
        q.put(asdict(s))
    t0 = time.time()
    deadline = t0 + a.budget_s
    procs = [ctx.Process(target=_worker, args=(r, q, str(tmp), deadline)) for r in range(a.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    from u_mup._plot import plot_sweep
    from u_mup._store import SweepStore
    from u_mup._sweep import lr_transfer_summary

    recs = [r for f in sorted(tmp.glob("worker*.jsonl")) for r in SweepStore(f).records]
    done = {(r["spec"]["parametrization"], r["spec"]["width"], r["spec"]["lr"]) for r in recs}
    missing = [
        (s.parametrization, s.width, s.lr)
        for s in specs
        if (s.parametrization, s.width, s.lr) not in done
    ]
    import torch

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    summary = lr_transfer_summary(recs) if recs else {}
    res = {
        "device": dev,
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": time.time() - t0,
        "spec": base,
        "widths": widths,
        "grids_log2": {k: list(v) for k, v in grids.items()},
        "summary": summary,
        "missing": missing,
        "records": recs,
    }
    (out / "lr_transfer_gpu.json").write_text(json.dumps(res, indent=1) + "\n")
    if recs:
        plot_sweep(
            recs,
            out / "lr_transfer_gpu.png",
            f"LR transfer, {a.n_layers} layers, {a.steps} steps ({dev})",
        )
    for f in tmp.glob("*"):
        f.unlink()
    tmp.rmdir()
    print(f"\nLR transfer: {len(recs)}/{len(specs)} runs in {time.time() - t0:.0f} s on {dev}")
    for p, s in summary.items():
        print(
            f"  {p:>4}: best lr by width {s['best_lr']}  shift {s['argmin_shift_steps']:+d} "
            f"steps  monotone-in-width {s['loss_monotone_in_width']}"
        )


if __name__ == "__main__":
    main()
