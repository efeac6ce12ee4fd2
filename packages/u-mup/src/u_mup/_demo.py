"""``uv run demo`` hook: a tiny LR-transfer result, u-μP vs SP, on CPU in seconds."""

from __future__ import annotations

import math
import time

import torch

__all__ = ["run"]


def run() -> dict:
    """Train 1-layer decoders at widths 32 and 128 over a 5-point log2 LR grid (40 Adam steps
    each, stdlib bytes) in u-μP and SP; report where each parametrization's best LR lands."""
    from ._data import stdlib_corpus
    from ._sweep import lr_transfer_summary
    from ._train import RunSpec, train_run

    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        src = stdlib_corpus(max_bytes=400_000)
        grids = {"umup": [2.0**e for e in range(-3, 2)], "sp": [2.0**e for e in range(-8, -3)]}
        recs = []
        for p, lrs in grids.items():
            for w in (32, 128):
                for lr in lrs:
                    spec = RunSpec(
                        parametrization=p,
                        width=w,
                        n_layers=1,
                        lr=lr,
                        steps=40,
                        batch_size=8,
                        seq_len=32,
                        head_dim=16,
                        warmup=0.2,
                    )
                    recs.append(train_run(spec, source=src))
    finally:
        torch.set_num_threads(threads)
    s = lr_transfer_summary(recs)
    for p in ("umup", "sp"):
        b = s[p]["best_lr"]
        print(
            f"{p:>4}: best LR width 32 = 2^{math.log2(b['32']):+.0f}, width 128 = "
            f"2^{math.log2(b['128']):+.0f}  (shift {s[p]['argmin_shift_steps']:+d} grid steps)"
        )
    finite = all(v is not None and math.isfinite(v) for v in s["umup"]["best_loss"].values())
    ok = finite and abs(s["umup"]["argmin_shift_steps"]) <= 1
    summary = (
        f"LR transfer 32→128: u-μP best-LR shift {s['umup']['argmin_shift_steps']:+d}, "
        f"SP {s['sp']['argmin_shift_steps']:+d} grid steps ({time.perf_counter() - t0:.0f} s)"
    )
    print(summary)
    return {"summary": summary, "ok": ok}


if __name__ == "__main__":  # pragma: no cover
    run()
