"""CPU experiments committed with the package (reference §3.4, §3.5, §3.1).

    python packages/u-mup/experiments/run_cpu.py coord   # coord check, widths 64 vs 512
    python packages/u-mup/experiments/run_cpu.py fp8     # simulated FP8 vs fp32, u-μP and SP
    python packages/u-mup/experiments/run_cpu.py fp8-plot  # redraw fp8_cpu.png from its JSON
    python packages/u-mup/experiments/run_cpu.py lr STORE.jsonl [STORE2.jsonl ...]
        # summarise an LR-transfer sweep made with `umup sweep lr` into JSON + PNG
    python packages/u-mup/experiments/run_cpu.py lr-batched  # full-grid LR transfer, 4 widths

Outputs go next to this file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from u_mup._coord import coord_check
from u_mup._plot import plot_sweep
from u_mup._store import SweepStore
from u_mup._sweep import lr_transfer_summary
from u_mup._train import RunSpec, train_run
from u_mup.models import build_decoder

HERE = Path(__file__).resolve().parent


def coord() -> None:
    out = {}
    for p, lr in (("umup", 0.25), ("umup", 0.5), ("sp", 2**-6)):
        t = time.time()
        r = coord_check(lambda w, p=p: build_decoder(p, w, 2), [64, 512], (1, 5, 20), lr)
        key = f"{p}_lr{lr:g}"
        r.plot(HERE / f"coord_check_{key}.png", f"{p}, η={lr:g}, widths 64 vs 512")
        out[key] = {
            "lr": lr,
            "passed_band_1.3": r.passed,
            "max_ratio_by_step": r.max_ratio_by_step(),
            "ratios": {f"step {s} {layer}": v for (s, layer), v in r.ratios.items()},
            "seconds": time.time() - t,
        }
        print(key, out[key]["passed_band_1.3"], out[key]["max_ratio_by_step"], flush=True)
    (HERE / "coord_check_cpu.json").write_text(json.dumps(out, indent=1) + "\n")


def fp8() -> None:
    # A realistic token count per step (16x128): with a mean loss, SP's gradients shrink like
    # 1/tokens and fall below E5M2's range at static scale 1, while u-μP's unit-scaled backward
    # keeps them near 1 whatever the batch. Each parametrization at its optimal η for this width
    # and batch on the H200 sweep (u-μP 2^0, SP 2^-7 at width 128).
    out = {}
    base = RunSpec(width=128, n_layers=2, steps=200, batch_size=16, seq_len=128, seed=0)
    for p, lr in (("umup", 1.0), ("sp", 2**-7)):
        res = {}
        for fp in (False, True):
            r = train_run(RunSpec(**{**base.__dict__, "parametrization": p, "lr": lr, "fp8": fp}))
            res["fp8" if fp else "fp32"] = r
            print(p, fp, r["loss"], r.get("flush_to_zero"), flush=True)
        l32, l8 = res["fp32"]["loss"], res["fp8"]["loss"]
        out[p] = {
            "lr": lr,
            "loss_fp32": l32,
            "loss_fp8": l8,
            "rel_gap": None if l8 is None else l8 / l32 - 1,
            "flush_to_zero_fp8": res["fp8"].get("flush_to_zero"),
            "curves": {k: v["curve"] for k, v in res.items()},
        }
    out["spec"] = base.__dict__
    (HERE / "fp8_cpu.json").write_text(json.dumps(out, indent=1) + "\n")
    plot_fp8()


def plot_fp8() -> None:
    """Draw ``fp8_cpu.png`` from ``fp8_cpu.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = json.loads((HERE / "fp8_cpu.json").read_text())
    spec = out["spec"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for p in ("umup", "sp"):
        for k, ls in (("fp32", "-"), ("fp8", "--")):
            c = out[p]["curves"][k]
            every = max(1, spec["steps"] // 50)
            ax.plot([i * every for i in range(len(c))], c, ls, label=f"{p} {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/byte)")
    ax.set_title(
        f"simulated FP8, static scale 1: width {spec['width']}, "
        f"{spec['batch_size']}x{spec['seq_len']} tokens",
        fontsize=9,
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "fp8_cpu.png", dpi=110)


def lr(paths: list[str]) -> None:
    from u_mup._train import RunSpec

    seen: dict[str, dict] = {}
    for p in paths:
        for r in SweepStore(p).records:
            seen.setdefault(RunSpec.from_dict(r["spec"]).key(), r)  # one record per run
    recs = list(seen.values())
    summary = lr_transfer_summary(recs)
    spec = {k: v for k, v in recs[0]["spec"].items() if k not in ("lr", "seed", "width")}
    res = {"spec": spec, "summary": summary, "runs": len(recs), "records": recs}
    (HERE / "lr_transfer_cpu.json").write_text(json.dumps(res, indent=1) + "\n")
    plot_sweep(recs, HERE / "lr_transfer_cpu.png", "LR transfer on CPU (2 layers, 2 seeds)")
    print(json.dumps(summary, indent=1))


def lr_batched() -> None:
    """LR transfer on CPU with full grids: widths 32, 64, 128, 256; 2 layers; 200 AdamW steps of
    16x32 stdlib bytes; seeds 0, 1; each (width, parametrization) grid one stacked model."""
    from u_mup._batched import Variant, train_batched

    grids = {"umup": range(-3, 6), "sp": range(-10, -1)}
    recs = []
    for p, grid in grids.items():
        for w in (32, 64, 128, 256):
            t = time.time()
            spec = RunSpec(p, width=w, n_layers=2, steps=200, batch_size=16, seq_len=32)
            recs += train_batched(spec, [Variant(2.0**e, s) for e in grid for s in (0, 1)])
            print(f"{p} width {w}: {time.time() - t:.0f} s", flush=True)
    summary = lr_transfer_summary(recs)
    spec = {k: v for k, v in recs[0]["spec"].items() if k not in ("lr", "seed", "width")}
    res = {"spec": spec, "summary": summary, "runs": len(recs), "records": recs}
    res["grids_log2"] = {p: list(g) for p, g in grids.items()}
    (HERE / "lr_transfer_cpu.json").write_text(json.dumps(res, indent=1) + "\n")
    plot_sweep(recs, HERE / "lr_transfer_cpu.png", "LR transfer on CPU (2 layers, 2 seeds)")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(1)
    cmds = {"coord": coord, "fp8": fp8, "fp8-plot": plot_fp8, "lr-batched": lr_batched}
    cmds["lr"] = lambda: lr(sys.argv[2:])
    cmds[sys.argv[1]]()
