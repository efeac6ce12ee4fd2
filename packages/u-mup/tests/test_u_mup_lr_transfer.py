"""LR transfer on CPU (the u-μP paper's headline claim, reference §3.1), as a slow test.

2-layer decoder, widths 32 and 256, 9-point log2 LR grids, 2 seeds, 200 AdamW steps of 16x32
standard-library bytes. Each (width, parametrization) grid x seeds is one stacked model
(u_mup._batched, row-equal to train_run; see test_u_mup_batched.py). Takes about 25 min of CPU
time on one core (41 min wall on a shared 2-core box, 2026-11-29).
"""

import math

import pytest

from u_mup._batched import Variant, train_batched
from u_mup._sweep import lr_transfer_summary
from u_mup._train import RunSpec

GRIDS = {"umup": range(-3, 6), "sp": range(-10, -1)}


@pytest.mark.slow
def test_umup_optimum_transfers_and_sp_moves():
    recs = []
    for p, grid in GRIDS.items():
        for w in (32, 256):
            spec = RunSpec(p, width=w, n_layers=2, steps=200, batch_size=16, seq_len=32)
            recs += train_batched(spec, [Variant(2.0**e, s) for e in grid for s in (0, 1)])
    summary = lr_transfer_summary(recs)
    # the acceptance bounds of the u-μP claim: its argmin moves by at most one grid step,
    # SP's moves by two or more toward smaller LR
    assert abs(summary["umup"]["argmin_shift_steps"]) <= 1, summary["umup"]
    assert summary["sp"]["argmin_shift_steps"] <= -2, summary["sp"]
    # both argmins are inside their grids (not at an edge), so the shift is measured, not clipped
    for p, grid in GRIDS.items():
        for lr in summary[p]["best_lr"].values():
            assert min(grid) < round(math.log2(lr)) < max(grid), (p, lr)
