"""Per-stage timings and launch-parameter variants of the SparQ kernels (CUDA), written as JSON.

Usage: ``python tune_sparq.py OUT.json [--smoke]``. Each stage is timed with CUDA events over
rotating input sets (working set well above L2); the bandwidth column counts the bytes a stage must
move (step 1: K_t rows read + logits written; select: logits read; step 2: K/V rows read).
"""

from __future__ import annotations

import functools
import json
import math
import sys

import torch

from sparq.kernels import approx_logits, prepare_query, select_topk, sparse_attention
from sparq.kernels._step2 import _num_splits

SHAPES = {
    "K1": dict(B=64, Hq=32, Hkv=32, S=16384, r=16, k=1024),
    "K2": dict(B=32, Hq=32, Hkv=8, S=32768, r=16, k=2048),
    "K3": dict(B=1, Hq=32, Hkv=8, S=131072, r=16, k=8192),
}
SMOKE = {"tiny": dict(B=2, Hq=4, Hkv=2, S=300, r=8, k=40)}


def _time(fn, reps):
    fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / 1e3 / reps


def _rot(fns):
    st = {"i": 0}

    def call():
        fns[st["i"] % len(fns)]()
        st["i"] += 1

    return call


def _tune_shape(sh: dict, reps: int) -> dict:
    """Time every stage variant for one shape; returns ``{stage: {variant: {s, GB_s}}}``."""
    dev = "cuda"
    B, Hq, Hkv, S, r, k, dh = sh["B"], sh["Hq"], sh["Hkv"], sh["S"], sh["r"], sh["k"], 128
    G = Hq // Hkv
    n = max(1, min(8, math.ceil(1e9 / (B * Hkv * S * r * 2))))
    sets = []
    for i in range(n):
        g = torch.Generator(device=dev).manual_seed(i)
        q = torch.randn(B, Hq, 1, dh, device=dev, generator=g).to(torch.bfloat16)
        K = torch.randn(B, Hkv, S, dh, device=dev, generator=g).to(torch.bfloat16)
        V = torch.randn_like(K)
        K_t = K.transpose(-1, -2).contiguous()
        lens = torch.full((B,), S, device=dev, dtype=torch.int64)
        i1, qh = prepare_query(q, Hkv, r, dh**-0.5)
        lg, tm, ts = approx_logits(K_t, i1, qh, lens)
        idx, _ = select_topk(lg, tm, ts, lens, k, 64, 4)
        sets.append((q, K, V, K_t, lens, i1, qh, lg, tm, ts, idx))
    r_ = {"input_sets": n, "step1": {}, "select": {}, "step2": {}}

    def stage(group, label, nbytes, fn, **kw):
        try:
            t = _time(_rot([functools.partial(fn, s, **kw) for s in sets]), reps)
            r_[group][label] = {"s": t, "GB_s": nbytes / t / 1e9}
        except Exception as e:  # a variant that fails to compile is recorded, not fatal
            r_[group][label] = {"error": repr(e)[:200]}

    def s1(s, **kw):
        return approx_logits(s[3], s[5], s[6], s[4], **kw)

    def sel(s, **kw):
        return select_topk(s[7], s[8], s[9], s[4], k, 64, 4, **kw)

    def s2(s, **kw):
        return sparse_attention(s[0], s[1], s[2], s[10], s[4], dh**-0.5, **kw)

    def ttopk(s):
        return s[7].sum(2).topk(k, dim=-1, sorted=False)

    b1 = B * Hkv * S * (r * 2 + G * 4)
    for tile, nw in [(1024, 8), (2048, 8), (512, 4), (1024, 4)]:
        stage("step1", f"tile{tile}_w{nw}", b1, s1, tile=tile, num_warps=nw)
    b2 = B * Hkv * S * G * 4
    for ch, nw in [(2048, 8), (4096, 8), (4096, 16), (1024, 4)]:
        stage("select", f"ch{ch}_w{nw}", b2, sel, chunk=ch, num_warps=nw)
    stage("select", "torch_topk_of_summed_logits", b2, ttopk)
    b3 = B * Hkv * k * dh * 2 * 2
    for bk, nw, st in [(64, 4, 2), (64, 8, 3), (32, 4, 3), (128, 8, 2), (64, 4, 3)]:
        base = _num_splits(B * Hkv, k, bk)
        for nsp in sorted({base, 2 * base, max(1, base // 2)}):
            stage("step2", f"bk{bk}_w{nw}_st{st}_sp{nsp}", b3, s2, num_splits=nsp, block=bk,
                  num_warps=nw, num_stages=st)  # fmt: skip
    return r_


def main(out_path: str, smoke: bool) -> None:
    dev = "cuda"
    shapes = SMOKE if smoke else SHAPES
    reps = 3 if smoke else 30
    res = {}
    if not smoke:
        x = torch.empty(int(2e9), dtype=torch.uint8, device=dev)
        y = torch.empty_like(x)
        t = _time(lambda: y.copy_(x), 20)
        res["copy_bandwidth_B_per_s"] = 2 * x.numel() / t
        del x, y
    for name, sh in shapes.items():
        res[name] = _tune_shape(sh, reps)
        torch.cuda.empty_cache()
        print(name, json.dumps(res[name])[:1500], flush=True)
        with open(out_path, "w") as f:  # after every shape, so a timeout keeps what was measured
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], "--smoke" in sys.argv)
