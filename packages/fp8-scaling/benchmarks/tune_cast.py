"""Time tile shapes of the cast+transpose kernel on the GPU; prints and writes JSON (--out)."""

import argparse
import json

import torch
import triton.testing

from fp8_scaling import _kernels
from fp8_scaling._cast_ops import amax_op, cast_transpose_op, cast_transpose_ref

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=8192)
p.add_argument("--out", default=None)
a = p.parse_args()
x = torch.randn(a.n, a.n, device="cuda").mul_(3).to(torch.bfloat16)
am = amax_op(x)
ref = cast_transpose_ref(x, am, "e4m3", 0, True)
rows = []
t_amax = triton.testing.do_bench(lambda: amax_op(x), return_mode="median")
for cfg in (
    [64, 128, 8, 8],
    [64, 64, 8, 4],
    [128, 128, 8, 8],
    [128, 64, 8, 8],
    [32, 128, 8, 4],
    [64, 256, 8, 8],
    [128, 128, 4, 16],
    [64, 128, 1, 4],
):
    _kernels.CAST_TILES[:] = cfg
    got = cast_transpose_op(x, am, "e4m3", 0, True)
    ok = all(
        torch.equal(g.view(torch.uint8), r.view(torch.uint8)) for g, r in zip(got[:2], ref[:2])
    )
    t = triton.testing.do_bench(
        lambda: cast_transpose_op(x, am, "e4m3", 0, True), return_mode="median"
    )
    rows.append(
        {
            "tiles": cfg,
            "ok": ok,
            "cast_ms": t,
            "amax_ms": t_amax,
            "total_ms": t + t_amax,
            "cast_GBps": 4 * a.n * a.n / t / 1e6,
        }
    )
    print(rows[-1])
if a.out:
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
