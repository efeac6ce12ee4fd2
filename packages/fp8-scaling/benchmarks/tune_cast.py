"""Time the cast kernels on the GPU after Triton's autotuning; prints and writes JSON (--out)."""

import argparse
import json

import torch
import triton.testing

from fp8_scaling import _kernels
from fp8_scaling._cast_ops import amax_op, cast_transpose_op, cast_transpose_ref, delayed_cast_op

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=8192)
p.add_argument("--out", default=None)
a = p.parse_args()
x = torch.randn(a.n, a.n, device="cuda").mul_(3).to(torch.bfloat16)
am = amax_op(x)
ref = cast_transpose_ref(x, am, "e4m3", 0, True)
got = cast_transpose_op(x, am, "e4m3", 0, True)
ok = all(torch.equal(g.view(torch.uint8), r.view(torch.uint8)) for g, r in zip(got[:2], ref[:2]))
s = torch.tensor(4.0, device="cuda")
delayed_cast_op(x, s, "e4m3", True)
t_amax = triton.testing.do_bench(lambda: amax_op(x), return_mode="median")
t_cast = triton.testing.do_bench(
    lambda: cast_transpose_op(x, am, "e4m3", 0, True), return_mode="median"
)
t_both = triton.testing.do_bench(
    lambda: cast_transpose_op(x, amax_op(x), "e4m3", 0, True), return_mode="median"
)
t_del = triton.testing.do_bench(lambda: delayed_cast_op(x, s, "e4m3", True), return_mode="median")
row = {
    "n": a.n,
    "bit_exact": ok,
    "amax_ms": t_amax,
    "cast_transpose_ms": t_cast,
    "amax_plus_cast_ms": t_both,
    "delayed_cast_ms": t_del,
    "cast_config": str(getattr(_kernels._cast_t_tuned, "best_config", None)),
    "amax_config": str(_kernels._AMAX_BEST),
}
print(row)
if a.out:
    with open(a.out, "w") as f:
        json.dump(row, f, indent=1)
