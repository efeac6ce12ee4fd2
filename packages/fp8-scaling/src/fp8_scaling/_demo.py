"""One short CPU demonstration: a tiny GPT trained in fp32 vs emulated FP8 (JIT scaling)."""

from __future__ import annotations

import copy
import time

import torch

from ._convert import convert_to_float8
from ._gpt import GPT, GPTConfig, stdlib_corpus, train_steps
from ._recipes import JustInTimeScaling
from ._recorder import ScaleRecorder

__all__ = ["run"]


def run() -> dict:
    """Train 30 steps in fp32 and in emulated FP8; report the loss gap and the recorded biases."""
    t0 = time.perf_counter()
    torch.manual_seed(0)
    data = stdlib_corpus(200_000)
    cfg = GPTConfig(n_layer=1, d_model=32, n_head=2, seq_len=32)
    base = GPT(cfg)
    fp8 = convert_to_float8(copy.deepcopy(base), JustInTimeScaling(), auto_filter=False)
    rec = ScaleRecorder(fp8, every=10)
    steps = 30
    hp = train_steps(base, data, steps, batch_size=8, lr=3e-3)["train"]
    q = train_steps(fp8, data, steps, batch_size=8, lr=3e-3, callback=lambda s: rec.step())["train"]
    tail = 10
    l_hp, l_q = sum(hp[-tail:]) / tail, sum(q[-tail:]) / tail
    gap = (l_q - l_hp) / l_hp
    records = rec.to_records()
    print(f"tiny GPT, {steps} steps on stdlib bytes: fp32 loss {l_hp:.4f}, FP8 (JIT) {l_q:.4f}")
    print(f"relative gap {100 * gap:+.2f} %")
    for role in ("weight", "activation", "gradient"):
        b = sorted({int(r["bias"]) for r in records if r["role"] == role})
        print(f"  {role:<10} scaling biases seen: {b}")
    ok = abs(gap) < 0.02 and all(torch.isfinite(torch.tensor(q))) and len(records) > 0
    dt = time.perf_counter() - t0
    return {
        "summary": f"FP8 JIT vs fp32 tiny GPT: loss gap {100 * gap:+.2f} % ({dt:.1f} s)",
        "ok": bool(ok),
    }


if __name__ == "__main__":  # pragma: no cover
    print(run())
