"""Compiled training step of the u-μP decoder vs its identical SP twin (reference §3.6).

CPU: tiny quick case. CUDA: widths 512–4096, 4 layers, batch 8×1024, bf16 autocast, AdamW.
``UMUP_BENCH_WIDTHS=512,2048`` restricts the CUDA widths (used to fit a time budget).
"""

from __future__ import annotations

import os

import torch
from monobench import Measure, case

from u_mup import param_groups
from u_mup.models import build_decoder

_W = [int(w) for w in os.environ.get("UMUP_BENCH_WIDTHS", "512,1024,2048,4096").split(",")]


def _step_fn(p: str, width: int, n_layers: int, batch: int, seq: int, device: str):
    torch.manual_seed(0)
    model = build_decoder(p, width, n_layers, head_dim=64 if width >= 256 else 16).to(device)
    lr = 2.0**-1 if p == "umup" else 2.0**-10
    opt = torch.optim.AdamW(param_groups(model, lr, 0.0), lr=lr, fused=device == "cuda")
    loss_fn = torch.compile(model.loss, fullgraph=True)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 256, (batch, seq + 1), generator=g).to(device)
    x, y = idx[:, :-1], idx[:, 1:]
    amp = device == "cuda"

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    n_params = sum(q.numel() for q in model.parameters())
    return step, n_params


def _measure(width: int, device: str, n_layers: int, batch: int, seq: int, repeats: int):
    cand, n_params = _step_fn("umup", width, n_layers, batch, seq, device)
    base, _ = _step_fn("sp", width, n_layers, batch, seq, device)

    def check():
        lc, lb = float(cand()), float(base())
        # both start from the same unit normals: the loss is ≈ ln(256) for u-μP (its readout
        # is 1/fan_in-scaled); both must be finite and near the uniform-prediction loss
        for v in (lc, lb):
            if not (0 < v < 12):
                raise AssertionError(f"training step produced a bad loss {v}")

    tokens = batch * seq
    return Measure(
        candidate=cand,
        baseline=base,
        candidate_label="u-μP (compiled)",
        baseline_label="SP (compiled)",
        flops=6.0 * n_params * tokens,
        peak_flops=989e12 if device == "cuda" else None,
        warmup=3,
        repeats=repeats,
        check=check,
        extra={"width": width, "n_layers": n_layers, "tokens": tokens, "params": n_params},
    )


@case(
    "umup_vs_sp_train_step",
    params=[{"width": w} for w in _W],
    quick_params=[{"width": 64}],
    devices=("cpu", "cuda"),
)
def bench_train_step(width: int, device: str) -> Measure:
    """Compiled fwd+bwd+AdamW step, u-μP decoder vs the SP decoder of the same shape."""
    if device == "cpu":
        return _measure(min(width, 128), device, 2, 4, 64, 5)
    return _measure(width, device, 4, 8, 1024, 10)
