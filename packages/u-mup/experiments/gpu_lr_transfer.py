"""LR transfer on one GPU (reference §3.1, the u-μP paper's headline experiment).

For each width (ascending) and parametrization, the whole 9-point log2 LR grid × seeds is trained
as ONE stacked model (:func:`u_mup._batched.train_batched`: each row is exactly the run
``train_run`` would make, checked against it first with ``--check``). JSON + PNG are rewritten
after every (width, parametrization) group, so a kill leaves partial results; a group whose
estimated time does not fit the remaining budget is skipped and listed under ``"missing"``.

    python packages/u-mup/experiments/gpu_lr_transfer.py --out OUT [--smoke] [--budget-s 480]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path


def check_equivalence(device: str) -> float:
    """Max abs difference of the loss curves of stacked rows vs separate ``train_run``s (fp32)."""
    from u_mup._batched import Variant, train_batched
    from u_mup._train import RunSpec, train_run

    worst = 0.0
    for p, lrs in (("umup", (0.5, 1.0)), ("sp", (2.0**-7, 2.0**-5))):
        spec = RunSpec(p, width=64, n_layers=2, steps=5, batch_size=4, seq_len=32, device=device)
        vs = [Variant(lr, seed) for lr, seed in zip(lrs, (0, 1))]
        for v, r in zip(vs, train_batched(spec, vs)):
            ref = train_run(replace(spec, lr=v.lr, seed=v.seed))
            worst = max(worst, *(abs(a - b) for a, b in zip(r["curve"], ref["curve"])))
    return worst


def _summaries(recs: list[dict]) -> dict:
    from u_mup._sweep import lr_transfer_summary

    val = [{**r, "loss": r["val_loss"]} for r in recs]
    return {"train_loss": lr_transfer_summary(recs), "val_loss": lr_transfer_summary(val)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run to test the plumbing")
    ap.add_argument("--steps", type=int, default=int(os.environ.get("UMUP_GPU_STEPS", 1500)))
    ap.add_argument("--widths", default=os.environ.get("UMUP_GPU_WIDTHS", "128,256,512,1024"))
    ap.add_argument("--seeds", default=os.environ.get("UMUP_GPU_SEEDS", "0,1"))
    ap.add_argument(
        "--parametrizations",
        default=os.environ.get("UMUP_GPU_PARAMS", "umup,sp"),
        help="comma-separated subset of umup,sp (to split one experiment over several runs)",
    )
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--budget-s", type=float, default=float(os.environ.get("UMUP_GPU_BUDGET", 470)))
    a = ap.parse_args()
    import torch

    from u_mup._batched import Variant, train_batched
    from u_mup._plot import plot_sweep
    from u_mup._train import RunSpec

    t0 = time.time()
    widths = [int(w) for w in a.widths.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    grids = {"umup": list(range(-4, 5)), "sp": list(range(-14, -5))}
    wanted = [p.strip() for p in a.parametrizations.split(",") if p.strip()]
    if not wanted or set(wanted) - set(grids):
        raise SystemExit(f"--parametrizations {a.parametrizations!r}: expected a subset of umup,sp")
    base = dict(n_layers=a.n_layers, steps=a.steps, batch_size=16, seq_len=128, head_dim=64)
    base.update(dtype="bf16", device="cuda", warmup=0.1)
    if a.smoke:
        widths, seeds = [32, 64], [0, 1]
        grids = {"umup": [-1, 0, 1], "sp": [-7, -6, -5]}
        base.update(n_layers=1, steps=4, batch_size=2, seq_len=16, head_dim=16, dtype="fp32")
        base.update(device="cpu")
    grids = {p: g for p, g in grids.items() if p in wanted}
    dev = base["device"]
    name = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    diff = check_equivalence(dev)
    print(f"stacked vs separate runs (fp32, 5 steps): max |Δloss| = {diff:.2e}", flush=True)
    if not diff < 1e-3:  # fp32 reorderings only; 1e-3 nats would be a real difference
        raise SystemExit(f"stacked trainer disagrees with train_run by {diff}; not timing")
    recs: list[dict] = []
    groups: list[dict] = []
    missing: list[dict] = []
    rate = None  # seconds per (row · step · width²), measured on the previous group

    def write() -> None:
        res = {
            "device": name,
            "date": time.strftime("%Y-%m-%d"),
            "wall_s": round(time.time() - t0, 1),
            "method": "each (width, parametrization) grid x seeds trained as one stacked model",
            "equivalence_max_abs_loss_diff": diff,
            "spec": base,
            "widths": widths,
            "seeds": seeds,
            "grids_log2": grids,
            "groups": groups,
            "summary": _summaries(recs) if recs else {},
            "missing": missing,
            "records": recs,
        }
        (out / "lr_transfer_gpu.json").write_text(json.dumps(res, indent=1) + "\n")
        if recs:
            plot_sweep(
                recs,
                out / "lr_transfer_gpu.png",
                f"LR transfer, {base['n_layers']} layers, {base['steps']} steps, "
                f"{len(seeds)} seeds ({name})",
            )

    # smallest and largest width first (they define the argmin shift), then the middle ones
    order = [widths[0], *widths[:0:-1]] if len(widths) > 1 else widths
    for w in order:
        for p, grid in grids.items():
            spec = RunSpec(parametrization=p, width=w, **base)
            variants = [Variant(2.0**e, s) for e in grid for s in seeds]
            cost = len(variants) * a.steps * max(w, 256) ** 2
            left = a.budget_s - (time.time() - t0)
            if rate is not None and rate * cost > left:
                missing.append({"parametrization": p, "width": w, "why": "budget"})
                print(f"skip {p} width {w}: needs ~{rate * cost:.0f} s, {left:.0f} s left")
                continue
            tg = time.time()

            def tick(step: int, steps: int, tg: float = tg, p: str = p, w: int = w) -> None:
                if step % 500 == 499:
                    print(f"  {p} width {w}: step {step + 1}/{steps} ({time.time() - tg:.0f} s)")

            rs = train_batched(spec, variants, on_step=tick)
            dt = time.time() - tg
            rate = dt / cost
            recs.extend(rs)
            ok = [r for r in rs if r["loss"] is not None]
            best = min(ok, key=lambda r: r["loss"]) if ok else None
            groups.append({"parametrization": p, "width": w, "rows": len(rs), "seconds": dt})
            print(
                f"{p:>4} width {w:>4}: {len(rs)} runs in {dt:.0f} s; best single run "
                f"lr=2^{round(math.log2(best['spec']['lr'])) if best else '?'} "
                f"loss={best['loss'] if best else float('nan'):.3f}",
                flush=True,
            )
            write()
    write()
    summ = _summaries(recs) if recs else {}
    print(f"\nLR transfer on {name}: {len(recs)} runs in {time.time() - t0:.0f} s")
    for kind, s in summ.items():
        for p, v in s.items():
            print(
                f"  [{kind}] {p:>4}: best lr {v['best_lr']} shift {v['argmin_shift_steps']:+d} "
                f"monotone {v['loss_monotone_in_width']}"
            )


if __name__ == "__main__":
    main()
