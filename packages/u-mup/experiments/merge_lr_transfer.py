"""Merge several ``lr_transfer_gpu.json`` files of one experiment into one result (+ PNG).

The GPU LR-transfer experiment may be split over several runs (``--widths``,
``--parametrizations``); this joins their records, checks that every part used the same training
spec, and recomputes the summaries (argmin shift, monotonicity) over all widths.

    python packages/u-mup/experiments/merge_lr_transfer.py A.json B.json ... --out merged.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="+", type=Path)
    ap.add_argument("--out", required=True, type=Path, help="merged JSON; the PNG goes beside it")
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location(
        "gpu_lr", Path(__file__).with_name("gpu_lr_transfer.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from u_mup._plot import plot_sweep

    parts = [json.loads(p.read_text()) for p in a.parts]
    base = parts[0]
    for p, r in zip(a.parts, parts):
        if r["spec"] != base["spec"] or r["seeds"] != base["seeds"]:
            raise SystemExit(f"{p}: training spec or seeds differ from {a.parts[0]}; not merging")
    seen: set[tuple] = set()
    recs, groups = [], []
    for r in parts:
        groups += r["groups"]
        for rec in r["records"]:
            s = rec["spec"]
            key = (s["parametrization"], s["width"], s["lr"], s["seed"])
            if key in seen:
                raise SystemExit(f"run {key} appears in more than one part; not merging")
            seen.add(key)
            recs.append(rec)
    done = {(g["parametrization"], g["width"]) for g in groups}
    widths = sorted({w for r in parts for w in r["widths"]})
    missing = [
        m for r in parts for m in r["missing"] if (m["parametrization"], m["width"]) not in done
    ]
    grids = {k: v for r in parts for k, v in r["grids_log2"].items()}
    res = {
        **base,
        "date": max(r["date"] for r in parts),
        "wall_s": round(sum(r["wall_s"] for r in parts), 1),
        "parts": [str(p.name) for p in a.parts],
        "widths": widths,
        "grids_log2": grids,
        "groups": groups,
        "summary": mod._summaries(recs),
        "missing": missing,
        "equivalence_max_abs_loss_diff": max(r["equivalence_max_abs_loss_diff"] for r in parts),
        "records": recs,
    }
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    sp = base["spec"]
    plot_sweep(
        recs,
        a.out.with_suffix(".png"),
        f"LR transfer, {sp['n_layers']} layers, {sp['steps']} steps, {len(base['seeds'])} seeds "
        f"({base['device']})",
    )
    for kind, s in res["summary"].items():
        for p, v in s.items():
            print(
                f"[{kind}] {p:>4}: best lr {v['best_lr']} shift {v['argmin_shift_steps']:+d} "
                f"monotone {v['loss_monotone_in_width']} best loss {v['best_loss']}"
            )
    print(f"missing: {missing}")


if __name__ == "__main__":
    main()
