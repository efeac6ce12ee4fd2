"""Where SparQ beats dense decode attention: a sweep of decode shapes (GPU), for the fallback rule.

For each shape the SparQ kernels (forced: ``dense_fallback=False``, the selection the dispatch
picks for an untuned shape) and dense SDPA run as CUDA-graph replays rotating over input sets
larger than L2, timed with CUDA events in interleaved rounds (median of the rounds). Each SparQ
output is first checked against the fp32 reference (relative error <= 3e-2). Records the
measured times, the faster side, the verdict of the bandwidth model
(:func:`sparq.kernels.dense_decode_is_faster`; no committed table entry exists for these shapes)
and the dispatch's own choice with ``dense_fallback=True`` (its measured verdict), timed in the
same rounds: ``dispatch_vs_best`` is its time over the faster of the two.

Usage: ``python fallback_sweep.py OUT_DIR [--rounds 3] [--reps 100] [--budget 480]
[--shapes "B,Hq,Hkv,S,k;..."]``; writes
``OUT_DIR/fallback_sweep.json`` after every shape.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from _graphs import graph_replay

from sparq import sparq_attention_reference
from sparq.kernels import dense_decode, dense_decode_is_faster, sparq_attention_triton
from sparq.kernels._common import event_seconds

DH, R, WINDOW, SINKS = 128, 16, 64, 4


def _grid():
    """(B, Hq, Hkv, S, k): GQA groups of 4 and MHA, k = S/16 (SparQ's 1/8 of the bytes)."""
    shapes = []
    for B, lengths in ((1, (8192, 16384, 32768, 65536)), (4, (4096, 8192, 16384)),
                       (16, (2048, 4096, 8192))):  # fmt: skip
        shapes += [(B, 32, 8, S, S // 16) for S in lengths]
    for B, lengths in ((1, (8192, 16384, 32768, 65536)), (8, (2048, 4096, 8192))):
        shapes += [(B, 32, 32, S, S // 16) for S in lengths]
    return shapes


def _sets(B, Hq, Hkv, S, dev):
    per_set = 3 * B * Hkv * S * DH * 2
    n = max(2, min(16, int(2.4e9 // per_set)))
    out = []
    for i in range(n):
        g = torch.Generator(device=dev).manual_seed(i)
        q = torch.randn(B, Hq, 1, DH, device=dev, generator=g)
        q = (q * (1 + 4 * (torch.rand(q.shape, device=dev, generator=g) > 0.9))).bfloat16()
        K = torch.randn(B, Hkv, S, DH, device=dev, generator=g).bfloat16()
        V = torch.randn(B, Hkv, S, DH, device=dev, generator=g).bfloat16()
        out.append((q, K, V, K.transpose(-1, -2).contiguous(), V.float().mean(2)))
    return out


def _rotating(calls):
    graphs = [graph_replay(c) for c in calls]
    state = {"i": 0}

    def call():
        graphs[state["i"] % len(graphs)]()
        state["i"] += 1

    return call


def sweep_shape(B, Hq, Hkv, S, k, rounds, reps):
    realloc = Hq == Hkv
    sets = _sets(B, Hq, Hkv, S, "cuda")
    kw = {"r": R, "k": k, "local_window": WINDOW, "sink_tokens": SINKS, "reallocation": realloc,
          "dense_fallback": False}  # fmt: skip

    def sparq(s):
        return lambda: sparq_attention_triton(s[0], s[1], s[2], K_t=s[3], v_mean=s[4], **kw)

    q, K, V, Kt, vm = sets[0]
    ref = sparq_attention_reference(q, K, V, K_t=Kt, v_mean=vm, r=R, k=k, local_window=WINDOW,
                                    sink_tokens=SINKS, reallocation=realloc).float()  # fmt: skip
    y = sparq(sets[0])().float()
    err = ((y - ref).abs().max() / ref.abs().max()).item()
    if not err <= 3e-2:
        raise AssertionError(f"SparQ output differs from the reference: rel err {err}")
    auto = {**kw, "dense_fallback": True}  # the dispatch's own choice (measured verdict)
    fns = {
        "sparq": [sparq(s) for s in sets],
        "dense": [lambda s=s: dense_decode(s[0], s[1], s[2], None, DH**-0.5) for s in sets],
        "dispatch": [
            lambda s=s: sparq_attention_triton(s[0], s[1], s[2], K_t=s[3], v_mean=s[4], **auto)
            for s in sets
        ],
    }
    chose_dense = bool(torch.equal(fns["dispatch"][0](), fns["dense"][0]()))
    for calls in fns.values():  # compile and pick the selection outside the graphs
        for c in calls:
            c()
    timed = {n: _rotating(c) for n, c in fns.items()}
    times = {n: [] for n in timed}
    for _ in range(rounds):
        for n, g in timed.items():
            g()
            torch.cuda.synchronize()
            times[n].append(event_seconds(g, reps))
    t = {n: statistics.median(v) for n, v in times.items()}
    return {
        "B": B, "Hq": Hq, "Hkv": Hkv, "S": S, "k": k, "realloc": realloc, "n_sets": len(sets),
        "rel_err": err, "t_sparq_s": t["sparq"], "t_dense_s": t["dense"],
        "speedup": t["dense"] / t["sparq"], "sparq_faster": t["sparq"] < t["dense"],
        "t_dispatch_s": t["dispatch"], "dispatch_chose_dense": chose_dense,
        "dispatch_vs_best": t["dispatch"] / min(t["sparq"], t["dense"]),
        "model_says_dense": dense_decode_is_faster(B, Hq, Hkv, S, DH, R, k),
    }  # fmt: skip


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--budget", type=float, default=480.0)
    ap.add_argument(
        "--shapes", default="", help='only these, e.g. "1,32,32,8192,512;8,32,32,2048,128"'
    )
    args = ap.parse_args(argv)
    t0 = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "shapes": []}  # fmt: skip
    grid = [tuple(int(x) for x in sh.split(",")) for sh in args.shapes.split(";") if sh]
    grid = grid or _grid()
    for i, shape in enumerate(grid):
        if time.time() - t0 > args.budget:
            print(f"budget spent: {len(grid) - i} shapes left out", flush=True)
            break
        try:
            r = sweep_shape(*shape, args.rounds, args.reps)
        except Exception as e:  # report the shape and go on
            r = {"shape": shape, "error": f"{type(e).__name__}: {e}"[:300]}
        res["shapes"].append(r)
        print(f"[{i + 1}/{len(grid)} {time.time() - t0:5.0f}s] {shape} "
              + (f"sparq {r['t_sparq_s'] * 1e6:7.1f} us dense {r['t_dense_s'] * 1e6:7.1f} us "
                 f"{r['speedup']:.2f}x model_dense={r['model_says_dense']} "
                 f"dispatch_dense={r['dispatch_chose_dense']} {r['dispatch_vs_best']:.2f}x best"
                 if "error" not in r else r["error"]), flush=True)  # fmt: skip
        (args.out / "fallback_sweep.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
