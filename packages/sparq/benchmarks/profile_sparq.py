"""Per-kernel device times of the SparQ decode pipeline (CUDA), to see where a shape's time goes.

Usage: ``python profile_sparq.py [--only K1,K2] [--reps 20] [--e2e] [--hist-diag K2,E2E]``.
For each shape of ``tune_sparq.SHAPES`` (launch choices from the tuning table,
``SPARQ_TUNED_JSON`` or the committed one) the pipeline runs ``reps`` times eagerly under
``torch.profiler``; every kernel's mean device time per call is printed, with the sum over kernels
and the CUDA-graph replay time of the whole call (their difference is the idle time between the
kernels). The result is printed as one JSON line prefixed with ``PROFILE_JSON`` (the GPU script
keeps it in its log). ``--e2e`` also profiles one step of the end-to-end model
(``bench_sparq_e2e``: B=16, 32k cache, 8 layers):
its kernels, how many there are per step, and the share of the SparQ attention kernels.
``--hist-diag`` first breaks the histogram selection's candidate pass down (see
:func:`hist_diag`).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from tune_sparq import DH, SHAPES, SINKS, WINDOW, _graphed, _time


def profile_shape(sh: dict, reps: int) -> dict:
    """Mean device time per call of every kernel of one SparQ decode call (microseconds)."""
    from torch.profiler import ProfilerActivity, profile

    from sparq.kernels import sparq_attention_triton

    B, Hq, Hkv, S, r, k = (sh[x] for x in ("B", "Hq", "Hkv", "S", "r", "k"))
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(B, Hq, 1, DH, device="cuda", generator=g)
    q = (q * (1 + 4 * (torch.rand(q.shape, device="cuda", generator=g) > 0.9))).bfloat16()
    K = torch.randn(B, Hkv, S, DH, device="cuda", generator=g, dtype=torch.bfloat16)
    V = torch.randn(B, Hkv, S, DH, device="cuda", generator=g, dtype=torch.bfloat16)
    K_t = K.transpose(-1, -2).contiguous()
    vm = V.float().mean(2)

    def call():
        return sparq_attention_triton(
            q, K, V, K_t=K_t, v_mean=vm, r=r, k=k, local_window=WINDOW, sink_tokens=SINKS,
            reallocation=sh["realloc"], dense_fallback=False,
        )  # fmt: skip

    for _ in range(3):
        call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            call()
        torch.cuda.synchronize()
    per = defaultdict(float)
    count = defaultdict(int)
    for e in prof.events():
        if str(getattr(e, "device_type", "")).endswith("CUDA"):
            per[e.name] += e.time_range.elapsed_us()
            count[e.name] += 1
    kernels = {n: {"us": per[n] / reps, "per_call": count[n] / reps} for n in per}
    t_graph = _time(_graphed([call], "cuda"), 100, "cuda") * 1e6
    total = sum(v["us"] for v in kernels.values())
    return {"kernels_us": kernels, "sum_kernels_us": total, "graph_us": t_graph,
            "idle_us": t_graph - total}  # fmt: skip


def profile_e2e_step(reps: int = 3) -> dict:
    """Kernel device times of one end-to-end decode step (``bench_sparq_e2e`` model, SparQ
    attention), grouped into the attention kernels and the rest of the step."""
    from _llama import LlamaShape, TinyLlama, fused_ops_agree
    from torch.profiler import ProfilerActivity, profile

    from sparq.kernels import sparq_attention_triton

    fused = fused_ops_agree("cuda", torch.bfloat16) is None  # as the end-to-end benchmark
    model = TinyLlama(LlamaShape(), 16, 32768 + 64, "cuda", fused=fused)
    model.prefill_random(32768)
    dh = model.dh

    def attn(q, K, V, K_t, vm, lens):
        return sparq_attention_triton(
            q, K, V, r=dh // 8, k=2048, local_window=64, sink_tokens=4, v_mean=vm, K_t=K_t,
            seq_lens=lens, reallocation=False, dense_fallback=False,
        )  # fmt: skip

    lens0 = model.lens.clone()
    for _ in range(2):
        model.step(attn)
    model.lens.copy_(lens0)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            model.step(attn)
            model.lens.copy_(lens0)
        torch.cuda.synchronize()
    per = defaultdict(float)
    count = defaultdict(int)
    for e in prof.events():
        if str(getattr(e, "device_type", "")).endswith("CUDA"):
            per[e.name] += e.time_range.elapsed_us()
            count[e.name] += 1
    kernels = {n: {"us": per[n] / reps, "per_step": count[n] / reps} for n in per}
    sparq_names = ("_prep", "_approx", "_h", "_threshold", "_candidate", "_final", "_fused",
                   "_sparse_attn", "_merge")  # fmt: skip
    t_attn = sum(v["us"] for n, v in kernels.items() if n.startswith(sparq_names))
    total = sum(v["us"] for v in kernels.values())

    def one():
        model.step(attn)
        model.lens.copy_(lens0)

    t_graph = _time(_graphed([one], "cuda"), 10, "cuda") * 1e6
    n_kernels = sum(v["per_step"] for v in kernels.values())
    return {"kernels_us": kernels, "sum_kernels_us": total, "attention_kernels_us": t_attn,
            "graph_us": t_graph, "kernels_per_step": n_kernels,
            "fused_model_ops": fused}  # fmt: skip


def hist_diag(sh: dict, reps: int = 100) -> dict:
    """Where the histogram candidate pass spends its time (CUDA-graph replays, microseconds):
    the threshold kernel alone, then threshold + candidate pass in its normal form and with
    parts left out (``select_topk_hist(_hcand_diag=...)``: 1 no histogram, 2 no compaction, 3
    the logits read alone, 4 the same with vector loads; and the chunk-major grid), step 1
    with a row- and a tile-major grid, and a torch reduction over the same logits (reference
    read bandwidth)."""
    from sparq.kernels import approx_logits, prepare_query, select_topk_hist
    from sparq.kernels._tuned import shape_key, tuned_entry

    B, Hq, Hkv, S, r, k = (sh[x] for x in ("B", "Hq", "Hkv", "S", "r", "k"))
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(B, Hq, 1, DH, device="cuda", generator=g).bfloat16()
    K_t = torch.randn(B, Hkv, DH, S, device="cuda", generator=g, dtype=torch.bfloat16)
    lens = torch.full((B,), S, device="cuda", dtype=torch.int64)
    i1, qh = prepare_query(q, Hkv, r, DH**-0.5)
    lg, tm, ts = approx_logits(K_t, i1, qh, lens, rows=True, tile=1024)
    entry = tuned_entry(shape_key(B, Hq, Hkv, S, DH, r, k)) or {}
    kw = {**entry.get("selection_kw", {"samples": 512, "thr_warps": 8, "lean": True}),
          "need_alpha": False}  # fmt: skip

    def sel(n, d=0):
        return lambda: select_topk_hist(lg, tm, ts, lens, k, WINDOW, SINKS, _stop_after=n,
                                        _hcand_diag=d, **kw)  # fmt: skip

    res = {"thr": _time(_graphed([sel(1)], "cuda"), reps, "cuda") * 1e6}
    for d, name in enumerate(("cand", "cand_nohist", "cand_keys_only", "cand_read", "cand_read_v")):
        res[name] = _time(_graphed([sel(2, d)], "cuda"), reps, "cuda") * 1e6 - res["thr"]
    res["cand_fast"] = (
        _time(_graphed([lambda: select_topk_hist(lg, tm, ts, lens, k, WINDOW, SINKS,
                                                 _stop_after=2, **{**kw, "fast_cand": True})],
                       "cuda"), reps, "cuda") * 1e6 - res["thr"]
    )  # fmt: skip
    res["cand_chunk_major"] = (
        _time(_graphed([lambda: select_topk_hist(lg, tm, ts, lens, k, WINDOW, SINKS,
                                                 _stop_after=2, **{**kw, "chunk_major": True})],
                       "cuda"), reps, "cuda") * 1e6 - res["thr"]
    )  # fmt: skip
    for tmj in (False, True):  # step 1 (row-loop kernel, 1024-position tiles), row/tile-major
        res["step1_tile_major" if tmj else "step1"] = _time(_graphed([
            lambda tmj=tmj: approx_logits(K_t, i1, qh, lens, rows=True, tile=1024, tile_major=tmj)
        ], "cuda"), reps, "cuda") * 1e6  # fmt: skip
    res["full_selection"] = _time(_graphed([sel(5)], "cuda"), reps, "cuda") * 1e6
    res["torch_sum_read"] = _time(_graphed([lambda: lg.sum()], "cuda"), reps, "cuda") * 1e6
    res["logits_MB"] = lg.numel() * 4 / 1e6
    return res


def main(argv: list[str]) -> None:
    reps = int(argv[argv.index("--reps") + 1]) if "--reps" in argv else 20
    names = argv[argv.index("--only") + 1].split(",") if "--only" in argv else list(SHAPES)
    out = {}
    if "--hist-diag" in argv:
        for name in argv[argv.index("--hist-diag") + 1].split(","):
            try:
                res = out[f"hist_diag_{name}"] = hist_diag(SHAPES[name])
                print(f"hist diag {name}: " + " ".join(f"{k}={v:.1f}" for k, v in res.items()),
                      flush=True)  # fmt: skip
            except Exception as e:
                out[f"hist_diag_{name}"] = {"error": repr(e)[:300]}
                print(f"hist diag {name}: {e!r}"[:300], flush=True)
            torch.cuda.empty_cache()
    for name in names:
        if name not in SHAPES:
            continue
        try:
            res = profile_shape(SHAPES[name], reps)
        except Exception as e:  # keep the other shapes
            out[name] = {"error": repr(e)[:300]}
            print(f"{name}: {e!r}"[:300], flush=True)
            continue
        out[name] = res
        print(f"{name}: graph {res['graph_us']:.1f} us, kernels {res['sum_kernels_us']:.1f} us, "
              f"idle {res['idle_us']:.1f} us", flush=True)  # fmt: skip
        for kname, v in sorted(res["kernels_us"].items(), key=lambda x: -x[1]["us"]):
            print(f"    {v['us']:8.1f} us  x{v['per_call']:.0f}  {kname[:90]}", flush=True)
        torch.cuda.empty_cache()
    if "--e2e" in argv:
        try:
            res = profile_e2e_step()
            out["e2e_step"] = res
            print(f"e2e step: graph {res['graph_us']:.0f} us, kernels {res['sum_kernels_us']:.0f} "
                  f"us ({res['kernels_per_step']:.0f} per step), SparQ attention "
                  f"{res['attention_kernels_us']:.0f} us", flush=True)  # fmt: skip
            top = sorted(res["kernels_us"].items(), key=lambda x: -x[1]["us"])[:25]
            for kname, v in top:
                print(f"    {v['us']:8.1f} us  x{v['per_step']:.0f}  {kname[:90]}", flush=True)
        except Exception as e:
            out["e2e_step"] = {"error": repr(e)[:300]}
            print(f"e2e step: {e!r}"[:300], flush=True)
    print("PROFILE_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv)
