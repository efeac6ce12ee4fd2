"""The GPU α-defaults script (experiments/gpu_alpha_defaults.py) in its tiny CPU smoke mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "gpu_alpha_defaults.py"
ALPHAS = (
    "alpha_ffn_act",
    "alpha_attn_softmax",
    "alpha_res",
    "alpha_res_attn_ratio",
    "alpha_loss_softmax",
)


@pytest.mark.slow  # about 50 s of one CPU core: 5 stacked runs plus a plot after each
def test_given_lr_skips_eta_stage_and_writes_every_alpha(tmp_path: Path) -> None:
    env = {**os.environ, "UMUP_B_LR": "0.5", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "alpha_defaults_gpu.json").read_text())
    assert res["eta"]["best_lr"] == 0.5
    assert res["eta"]["given"] is True
    # no η-sweep rows: every record runs at the given η
    assert {r["spec"]["lr"] for r in res["records"]} == {0.5}
    assert set(res["alpha_curves"]) == set(ALPHAS)
    # smoke grid: α ∈ {2^-1, 1, 2} per α (1 = the shared default rows)
    for n in ALPHAS:
        assert sorted(float(k) for k in res["alpha_curves"][n]) == [0.5, 1.0, 2.0]
    n_seeds = len(res["seeds"])
    n_alpha_rows = n_seeds + len(ALPHAS) * 2 * n_seeds
    n_combined = n_seeds if res["combined_alphas"] else 0
    assert len(res["records"]) == n_alpha_rows + n_combined
    assert "improvement" in res
    assert (tmp_path / "alpha_defaults_gpu.png").stat().st_size > 0
