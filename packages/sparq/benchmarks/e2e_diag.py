"""Where one end-to-end decode step spends its time: SparQ vs dense, per kernel, inside the graph.

Usage: ``python e2e_diag.py OUT.json [--smoke] [--streams 2,3] [--reps 30] [--no-profile]``.

Model of ``bench_sparq_e2e`` (hidden 4096, 32/8 heads, 8 layers, batch 16, 32k cache; the launch
choices from the tuning table, ``SPARQ_TUNED_JSON`` or the committed one). Phases, each result
printed and written to ``OUT.json`` as soon as it exists:

1. checks: SparQ attention on layer 0's cache against the fp32 reference (first two rows); every
   staggered variant (``streams=n``) bit for bit against one stream; the model with the residual
   adds fused into the norms (``add_rms``) against the plain step (``fused_ops_agree``);
2. CUDA-graph replays of one whole step (the live length reset after each), per attention
   (``sparq`` one stream, ``sparq_sN``, ``dense`` SDPA, ``none``: no attention at all, which is
   the model's own cost) and model variant (``add_rms``; ``weights_t``: weights stored
   transposed); and the eight attention calls of a step alone;
3. ``torch.profiler`` over graph replays of the SparQ and dense steps: every kernel's device time
   inside the graph, grouped (SparQ kernels, dense attention, GEMMs, the rest), the busy time
   (union of kernel intervals) and the idle time of the step.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _llama import LlamaShape, TinyLlama, fused_ops_agree

_SPARQ = ("_prep", "_approx", "_h", "_threshold", "_candidate", "_final", "_fused",
          "_sparse_attn", "_merge", "_attend", "_sel")  # fmt: skip
_GEMM = ("nvjet", "gemm", "Gemm", "cublas", "cutlass", "splitK", "sm90_xmma")
_DENSE = ("flash", "fmha", "attention", "Attention", "efficient", "cudnn")


def _group(name: str) -> str:
    if name.startswith(_SPARQ):
        return "sparq"
    if any(g in name for g in _DENSE):
        return "dense_attention"
    if any(g in name for g in _GEMM):
        return "gemm"
    if "Memcpy" in name or "Memset" in name:
        return "memcpy"
    return "other"


class Diag:
    def __init__(self, out: Path, smoke: bool):
        self.out, self.smoke, self.res = out, smoke, {}
        self.dev = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
        if smoke and torch.cuda.is_available():
            self.dev = "cuda"

    def save(self, key, value):
        self.res[key] = value
        self.out.write_text(json.dumps(self.res, indent=1, default=str))
        print(f"{key}: {json.dumps(value, default=str)}", flush=True)

    def build(self, add_rms=False, weights_t=False):
        if self.smoke:
            shape = LlamaShape(hidden=256, heads=4, kv_heads=2, layers=2, ffn=512, vocab=512)
            B, prefill, k, window = 2, 96, 6, 4
        else:
            shape, B, prefill, k, window = LlamaShape(), 16, 32768, 2048, 64
        dt = torch.bfloat16 if self.dev == "cuda" else torch.float16
        fused = fused_ops_agree(self.dev, dt, add_rms=add_rms) is None
        m = TinyLlama(shape, B, prefill + 64, self.dev, dt, fused=fused,
                      add_rms=add_rms and fused, weights_t=weights_t)  # fmt: skip
        m.prefill_random(prefill)
        m.tok.copy_(torch.arange(B, device=self.dev) * 97 % shape.vocab)
        self.dh = m.dh
        self.plan = {"r": m.dh // 8, "k": k, "local_window": window, "sink_tokens": 4}
        return m, fused

    def attn_fns(self, streams):
        from sparq.kernels import dense_decode, sparq_attention_triton

        p = self.plan
        scale = self.dh**-0.5

        def sparq(n):
            def f(q, K, V, K_t, vm, lens):
                return sparq_attention_triton(q, K, V, K_t=K_t, v_mean=vm, seq_lens=lens,
                                              reallocation=False, dense_fallback=False,
                                              streams=n, **p)  # fmt: skip

            return f

        fns = {"sparq": sparq(1), **{f"sparq_s{n}": sparq(n) for n in streams}}
        fns["sparq_table"] = sparq(None)  # the table's (or SPARQ_STREAMS') choice
        fns["dense"] = lambda q, K, V, K_t, vm, lens: dense_decode(q, K, V, lens, scale)
        fns["none"] = lambda q, K, V, K_t, vm, lens: q
        return fns

    def check(self, m, fns):
        from sparq import sparq_attention_reference

        g = torch.Generator(device=self.dev).manual_seed(3)
        q = torch.randn(m.B, m.s.heads, 1, m.dh, device=self.dev, generator=g)
        q = (q * (1 + 4 * (torch.rand(q.shape, device=self.dev, generator=g) > 0.9))).to(
            m.K[0].dtype
        )
        lens = m.lens + 1
        args = (q, m.K[0], m.V[0], m.K_t[0], m.v_mean[0], lens)
        base = fns["sparq"](*args)
        nb = min(2, m.B)
        ref = sparq_attention_reference(
            q[:nb], m.K[0][:nb], m.V[0][:nb], K_t=m.K_t[0][:nb], v_mean=m.v_mean[0][:nb],
            seq_lens=lens[:nb], reallocation=False, **self.plan,
        ).float()  # fmt: skip
        err = (base[:nb].float() - ref).abs().max().item() / max(1e-6, ref.abs().max().item())
        res = {"sparq_rel_err_vs_fp32_reference": err, "ok": math.isfinite(err) and err <= 3e-2}
        for name, f in fns.items():
            if name.startswith("sparq_"):
                res[f"{name}_equal_one_stream"] = bool(torch.equal(f(*args), base))
        return res

    def graph(self, fn):
        """A callable replaying ``fn`` captured in a CUDA graph (``fn`` itself on the CPU)."""
        if self.dev != "cuda":
            return fn
        fn()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            fn()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        return g.replay

    def time(self, fn, reps):
        fn()
        if self.dev != "cuda":
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            return (time.perf_counter() - t0) / reps
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / 1e3 / reps

    def step_fn(self, m, attn):
        lens0 = m.lens.clone()

        def one():
            m.step(attn)
            m.lens.copy_(lens0)  # the same live length at every replay

        return one

    def attn_only_fn(self, m, attn):
        g = torch.Generator(device=self.dev).manual_seed(5)
        qs = [torch.randn(m.B, m.s.heads, 1, m.dh, device=self.dev, generator=g).to(m.K[0].dtype)
              for _ in m.K]  # fmt: skip
        lens = m.lens + 1

        def all_layers():
            for q, K, V, K_t, vm in zip(qs, m.K, m.V, m.K_t, m.v_mean):
                attn(q, K, V, K_t, vm, lens)

        return all_layers

    def profile(self, fn, reps=3):
        """Kernels of ``reps`` graph replays of ``fn`` (device times, intervals per replay)."""
        from torch.profiler import ProfilerActivity, profile

        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(reps):
                fn()
                torch.cuda.synchronize()
        evs = []
        for e in prof.events():
            if str(getattr(e, "device_type", "")).endswith("CUDA"):
                evs.append((e.time_range.start, e.time_range.end, e.name))
        evs.sort()
        per = defaultdict(float)
        cnt = defaultdict(int)
        groups = defaultdict(float)
        for s, e, n in evs:
            per[n] += (e - s) / reps
            cnt[n] += 1
            groups[_group(n)] += (e - s) / reps
        busy, span, cur_s, cur_e = 0.0, 0.0, None, None
        if evs:
            span = (evs[-1][1] - evs[0][0]) / reps
            for s, e, _ in evs:
                if cur_e is None or s > cur_e:
                    if cur_e is not None:
                        busy += cur_e - cur_s
                    cur_s, cur_e = s, e
                else:
                    cur_e = max(cur_e, e)
            busy += cur_e - cur_s
        top = sorted(per.items(), key=lambda x: -x[1])[:30]
        return {
            "kernels_per_step": len(evs) / reps,
            "sum_kernel_us": sum(per.values()),
            "busy_us": busy / reps,
            "groups_us": dict(groups),
            "top": [(n[:80], round(t, 2), cnt[n] / reps) for n, t in top],
            "span_us_incl_gaps_between_replays": span,
        }


def main(argv):
    out = Path(argv[1])
    smoke = "--smoke" in argv
    reps = int(argv[argv.index("--reps") + 1]) if "--reps" in argv else (2 if smoke else 30)
    streams = [int(x) for x in (argv[argv.index("--streams") + 1] if "--streams" in argv
                                else "2,3").split(",")]  # fmt: skip
    d = Diag(out, smoke)
    t0 = time.monotonic()
    m, fused = d.build()
    fns = d.attn_fns(streams)
    d.save("setup", {"fused_model_ops": fused, "plan": d.plan, "device": d.dev,
                     "gpu": torch.cuda.get_device_name() if d.dev == "cuda" else None,
                     "build_s": time.monotonic() - t0})  # fmt: skip
    d.save("check", d.check(m, fns))
    try:
        agree = fused_ops_agree(d.dev, m.K[0].dtype, add_rms=True) or "yes"
    except Exception as e:
        agree = repr(e)[:300]
    d.save("add_rms_agrees", agree)
    # 2. whole steps and the attention calls alone (graph replays, microseconds)
    step_us, attn_us = {}, {}
    order = ["sparq", *[f"sparq_s{n}" for n in streams], "sparq_table", "dense", "none"]
    for name in order:
        try:
            step_us[name] = d.time(d.graph(d.step_fn(m, fns[name])), reps) * 1e6
        except Exception as e:
            step_us[name] = repr(e)[:200]
        d.save("step_us", step_us)
    for name in order[:-1]:
        try:
            attn_us[name] = d.time(d.graph(d.attn_only_fn(m, fns[name])), reps) * 1e6
        except Exception as e:
            attn_us[name] = repr(e)[:200]
        d.save("attention_8_layers_us", attn_us)
    # the model with the residual adds fused into the norms (both sides gain alike)
    if d.res["add_rms_agrees"] == "yes":
        m2, _ = d.build(add_rms=True)
        ar = {}
        for name in ("none", "sparq", "dense"):
            try:
                ar[name] = d.time(d.graph(d.step_fn(m2, fns[name])), reps) * 1e6
            except Exception as e:
                ar[name] = repr(e)[:200]
            d.save("step_us_add_rms", ar)
        del m2
    # the weights stored transposed (another GEMM layout for the model's own products)
    m3, _ = d.build(weights_t=True)
    wt = {}
    for name in ("none", "sparq", "dense"):
        try:
            wt[name] = d.time(d.graph(d.step_fn(m3, fns[name])), reps) * 1e6
        except Exception as e:
            wt[name] = repr(e)[:200]
        d.save("step_us_weights_t", wt)
    del m3
    # 3. kernels inside the graph (last: the profiler may slow later launches)
    if d.dev == "cuda" and "--no-profile" not in argv:
        valid = {n: t for n, t in step_us.items() if n.startswith("sparq") and
                 isinstance(t, float)}  # fmt: skip
        best = min(valid, key=valid.get) if valid else "sparq"
        for name in dict.fromkeys(("sparq", best, "dense", "none")):
            try:
                d.save(f"profile_{name}", d.profile(d.graph(d.step_fn(m, fns[name]))))
            except Exception as e:
                d.save(f"profile_{name}", {"error": repr(e)[:300]})
    d.save("seconds", time.monotonic() - t0)
    print("E2E_DIAG_JSON " + json.dumps(d.res, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv)
