"""Where one end-to-end decode step spends its time: SparQ vs dense, per kernel, inside the graph.

Usage: ``python e2e_diag.py OUT.json [--smoke] [--streams 2,3] [--reps 30] [--no-profile]``
(``--streams ""``: no staggered variants) or ``python e2e_diag.py OUT.json --series``: only the
device time of each of 64 consecutive step replays (issued back to back, and with the tokens read
by the host after every step), SparQ, dense, SparQ again, with NVML samples (clocks, power,
throttle reasons) during 300 replays; the model options from ``--models "a,b;c"`` (one model
per ``;``-separated set) or ``SPARQ_E2E_MODEL``.

Model of ``bench_sparq_e2e`` (hidden 4096, 32/8 heads, 8 layers, batch 16, 32k cache; the launch
choices from the tuning table, ``SPARQ_TUNED_JSON`` or the committed one). Phases, each result
printed and written to ``OUT.json`` as soon as it exists:

1. checks: SparQ attention on layer 0's cache against the fp32 reference (first two rows); every
   staggered variant (``streams=n``) bit for bit against one stream; the model with the residual
   adds fused into the norms (``add_rms``) against the plain step (``fused_ops_agree``);
2. CUDA-graph replays of one whole step (the live length reset after each), per attention
   (``sparq`` one stream, ``sparq_sN``, ``dense`` SDPA, ``none``: no attention at all, which is
   the model's own cost); the eight attention calls of a step alone; the SparQ step captured
   again (a new graph memory pool) and with the launch modes ``SPARQ_PDL=1|2``, ``SPARQ_L2=0``;
   then freshly built models (``base2``: the same model again; ``add_rms``: residual adds fused
   into the norms; ``weights_t``: weights stored transposed; both), each with none / SparQ /
   dense attention; the variant with the fastest SparQ step is written to
   ``/tmp/sparq_e2e_model.txt`` (the ``TinyLlama`` options, for ``SPARQ_E2E_MODEL``);
3. ``torch.profiler`` over back-to-back graph replays of the SparQ and dense steps: every
   kernel's device time inside the graph, grouped (SparQ kernels, dense attention, GEMMs, the
   rest), the busy time (union of kernel intervals), the idle time of the step and where it
   falls (idle gap before each kernel, summed per pair of consecutive kernels).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from sparq.kernels import _tuned

sys.path.insert(0, str(Path(__file__).parent))
from _graphs import graph_replay, seconds_per_call
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


def _table_with_samples(samples: int | str) -> str:
    """Path of a copy of the tuning table in use whose end-to-end entry (B=16, S=32832) draws
    ``samples`` keys for its selection thresholds (``"512m2.25"``: 512 keys and the candidate
    margin 2.25, :func:`sparq.kernels._select_hist.hist_plan`)."""
    from sparq.kernels._tuned import TUNED_PATH

    samp, _, margin = str(samples).partition("m")
    table = json.loads(Path(os.environ.get("SPARQ_TUNED_JSON", TUNED_PATH)).read_text())
    for key, entry in table.get("shapes", {}).items():
        if key.startswith("B=16,Hq=32,Hkv=8,S=32832,"):
            entry.setdefault("selection_kw", {})["samples"] = int(samp)
            if margin:
                entry["selection_kw"]["margin"] = float(margin)
    path = Path(f"/tmp/sparq_tuned_samples{samples}.json")
    path.write_text(json.dumps(table))
    return str(path)


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

    def build(self, add_rms=False, weights_t=False, triton_gemm=False):
        if self.smoke:
            shape = LlamaShape(hidden=256, heads=4, kv_heads=2, layers=2, ffn=512, vocab=512)
            B, prefill, k, window = 2, 96, 6, 4
        else:
            shape, B, prefill, k, window = LlamaShape(), 16, 32768, 2048, 64
        dt = torch.bfloat16 if self.dev == "cuda" else torch.float16
        fused = fused_ops_agree(self.dev, dt, add_rms=add_rms) is None
        m = TinyLlama(shape, B, prefill + 64, self.dev, dt, fused=fused,
                      add_rms=add_rms and fused, weights_t=weights_t,
                      gemm="triton" if triton_gemm and fused else "cublas")  # fmt: skip
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
        return graph_replay(fn)

    def time(self, fn, reps):
        return seconds_per_call(fn, reps, cuda=self.dev == "cuda")

    def clocks(self, fn, n=300):
        """SM clock (MHz) and power (mW) read while ``n`` replays of ``fn`` run (needs pynvml;
        otherwise the error)."""
        if self.dev != "cuda":
            return None
        try:
            for _ in range(n):
                fn()
            time.sleep(0.2)  # the queued replays are running now
            res = {}
            try:
                res = {"sm_mhz": torch.cuda.clock_rate(), "power_mw": torch.cuda.power_draw()}
            except Exception as e:  # no pynvml: ask nvidia-smi (every GPU of the host)
                import subprocess

                q = ("index,clocks.sm,clocks.mem,power.draw,temperature.gpu,"
                     "clocks_event_reasons.active")  # fmt: skip
                res = {"pynvml": repr(e)[:80], "nvidia_smi": subprocess.run(
                    ["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                    capture_output=True, text=True, timeout=10).stdout.strip()}  # fmt: skip
            torch.cuda.synchronize()
            return res
        except Exception as e:
            torch.cuda.synchronize()
            return {"error": repr(e)[:200]}

    def series(self, fn, m, n=64, readback=False):
        """Device time of each of ``n`` consecutive replays of ``fn`` (events between them; with
        ``readback`` the host reads the tokens after every replay): first 5, last 20, median,
        min and max in microseconds."""
        if self.dev != "cuda":
            return None
        fn()
        torch.cuda.synchronize()
        evs = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
        evs[0].record()
        for i in range(n):
            fn()
            evs[i + 1].record()
            if readback:
                m.tok.tolist()
        torch.cuda.synchronize()
        t = [evs[i].elapsed_time(evs[i + 1]) * 1e3 for i in range(n)]
        sorted_t = sorted(t)
        return {"first5": sum(t[:5]) / 5, "last20": sum(t[-20:]) / 20,
                "median": sorted_t[n // 2], "min": sorted_t[0], "max": sorted_t[-1],
                "mean": sum(t) / n}  # fmt: skip

    def nvml(self, fn, n=300):
        """NVML samples (every ~5 ms) while ``n`` replays of ``fn`` run: SM and memory clocks,
        power, GPU temperature and the union of the clock-event (throttle) reasons."""
        if self.dev != "cuda":
            return None
        import threading

        try:
            import pynvml

            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(
                torch.cuda._get_nvml_device_index(torch.cuda.current_device())
            )
        except Exception as e:
            return {"error": repr(e)[:200]}
        samples, stop = [], threading.Event()

        def sample():
            reasons_fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
                pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", lambda h: 0
            )
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    samples.append((
                        pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
                        pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
                        pynvml.nvmlDeviceGetPowerUsage(h),
                        pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
                        int(reasons_fn(h)),
                    ))  # fmt: skip
                time.sleep(0.005)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
        stop.set()
        th.join()
        if not samples:
            return {"error": "no samples"}
        reasons = 0
        for x in samples:
            reasons |= x[4]
        col = list(zip(*samples))
        return {"n": len(samples), "sm_mhz_min": min(col[0]), "sm_mhz_max": max(col[0]),
                "mem_mhz_min": min(col[1]), "mem_mhz_max": max(col[1]),
                "power_w_max": max(col[2]) / 1e3, "power_w_mean": sum(col[2]) / len(col[2]) / 1e3,
                "temp_c_max": max(col[3]), "reasons_union": hex(reasons),
                "reasons_nonidle_share": sum(1 for x in samples if x[4] & ~1) / len(samples),
                }  # fmt: skip

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
        """Kernels of ``reps`` back-to-back graph replays of ``fn``: device time per kernel and
        group, the busy time (union of kernel intervals) and the idle gaps before each kernel,
        summed per (previous kernel, kernel) pair (microseconds per step)."""
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
        gaps = defaultdict(float)
        for s, e, n in evs:
            per[n] += (e - s) / reps
            cnt[n] += 1
            groups[_group(n)] += (e - s) / reps
        busy, idle, span, end, prev = 0.0, 0.0, 0.0, None, None
        for s, e, n in evs:
            if end is not None and s > end:
                idle += s - end
                gaps[(prev[:36], n[:36])] += (s - end) / reps
            busy += max(0.0, e - max(s, end if end is not None else s))
            end = e if end is None else max(end, e)
            prev = n
        if evs:
            span = (evs[-1][1] - evs[0][0]) / reps
        top = sorted(per.items(), key=lambda x: -x[1])[:30]
        top_gaps = sorted(gaps.items(), key=lambda x: -x[1])[:20]
        return {
            "kernels_per_step": len(evs) / reps,
            "sum_kernel_us": sum(per.values()),
            "busy_us": busy / reps,
            "idle_us": idle / reps,
            "span_us": span,
            "groups_us": dict(groups),
            "top": [(n[:80], round(t, 2), cnt[n] / reps) for n, t in top],
            "gaps_us": [(f"{a} -> {b}", round(t, 2)) for (a, b), t in top_gaps],
        }


def main(argv):
    out = Path(argv[1])
    smoke = "--smoke" in argv
    reps = int(argv[argv.index("--reps") + 1]) if "--reps" in argv else (2 if smoke else 30)
    arg = argv[argv.index("--streams") + 1] if "--streams" in argv else "2"
    streams = [int(x) for x in arg.split(",") if x.strip()]
    d = Diag(out, smoke)
    t0 = time.monotonic()
    if "--series" in argv:  # only the per-step series and NVML samples
        # model options: --models "weights_t;add_rms,weights_t" (one model each), else
        # SPARQ_E2E_MODEL
        spec = argv[argv.index("--models") + 1] if "--models" in argv else os.environ.get(
            "SPARQ_E2E_MODEL", "")  # fmt: skip
        for mspec in spec.split(";"):
            opts = {o.strip() for o in mspec.split(",") if o.strip()}
            m, fused = d.build(add_rms="add_rms" in opts, weights_t="weights_t" in opts,
                               triton_gemm="triton_gemm" in opts)  # fmt: skip
            fns = d.attn_fns([])
            tag = "+".join(sorted(opts)) or "base"
            d.save(
                f"setup_{tag}",
                {
                    "fused_model_ops": fused,
                    "plan": d.plan,
                    "gpu": torch.cuda.get_device_name() if d.dev == "cuda" else None,
                },
            )
            runs = [("sparq", None), ("dense", None), ("sparq", None)]  # SparQ again after dense
            if "--samples" in argv:  # the end-to-end entry's selection sample size overridden
                runs = [("dense", None)] + [
                    ("sparq", v.strip()) for v in argv[argv.index("--samples") + 1].split(",")
                ]  # fmt: skip
            for name, samp in runs:
                env = os.environ.get("SPARQ_TUNED_JSON")
                if samp is not None:
                    os.environ["SPARQ_TUNED_JSON"] = _table_with_samples(samp)
                _tuned.reload()
                try:
                    g = d.graph(d.step_fn(m, fns[name]))
                    res = {"pipelined": d.series(g, m), "readback": d.series(g, m, readback=True),
                           "nvml": d.nvml(g), "pipelined_after": d.series(g, m)}  # fmt: skip
                    del g
                finally:
                    if env is None:
                        os.environ.pop("SPARQ_TUNED_JSON", None)
                    else:
                        os.environ["SPARQ_TUNED_JSON"] = env
                    _tuned.reload()
                key = f"series_{tag}_{name}" + (f"_samples{samp}" if samp else "")
                d.save(key + ("_again" if key in d.res else ""), res)
            del m
        # the sample size whose SparQ steps were fastest on average (back to back), for the
        # harness that follows (SPARQ_TUNED_JSON)
        means = {k.rsplit("samples", 1)[1].split("_")[0]: v["pipelined"]["mean"]
                 for k, v in d.res.items() if "_samples" in k and v.get("pipelined")}  # fmt: skip
        if means:
            best = min(means, key=means.get)
            Path("/tmp/sparq_e2e_table.txt").write_text(_table_with_samples(best) + "\n")
            d.save("best_samples", best)
        d.save("seconds", time.monotonic() - t0)
        print("E2E_DIAG_JSON " + json.dumps(d.res, default=str), flush=True)
        return
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
    order = ["sparq", *[f"sparq_s{n}" for n in streams], "dense", "none"]
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
    # the same step captured again: how much a new capture (new memory pool) changes
    step_us["sparq_again"] = d.time(d.graph(d.step_fn(m, fns["sparq"])), reps) * 1e6
    g = d.graph(d.step_fn(m, fns["sparq"]))
    step_us["sparq_again_retimed"] = d.time(g, reps) * 1e6
    few, many = (1, 2) if smoke else (3, 100)  # a long run slower: clocks, power?
    step_us["sparq_again_3reps"] = d.time(g, few) * 1e6
    step_us["sparq_again_100reps"] = d.time(g, many) * 1e6
    d.save("clocks_during_sparq_steps", d.clocks(g))
    del g
    gd = d.graph(d.step_fn(m, fns["dense"]))
    d.save("clocks_during_dense_steps", d.clocks(gd))
    step_us["dense_3reps"] = d.time(gd, few) * 1e6
    step_us["dense_100reps"] = d.time(gd, many) * 1e6
    del gd
    d.save("step_us", step_us)
    d.save("step_us", step_us)
    # SparQ launch modes inside the model (environment read while capturing)
    modes = {}
    for mname, env in (("pdl1", {"SPARQ_PDL": "1"}), ("pdl2", {"SPARQ_PDL": "2"}),
                       ("l2_off", {"SPARQ_L2": "0"})):  # fmt: skip
        os.environ.update(env)
        try:
            modes[mname] = d.time(d.graph(d.step_fn(m, fns["sparq"])), reps) * 1e6
        except Exception as e:
            modes[mname] = repr(e)[:200]
        finally:
            for k in env:
                os.environ.pop(k, None)
        d.save("step_us_sparq_modes", modes)
    # 3. kernels inside the graph, back-to-back replays (the profiler may slow later launches,
    #    so the other models are built and timed first)
    variants = {"base2": {}, "add_rms": {"add_rms": True}, "weights_t": {"weights_t": True},
                "add_rms_weights_t": {"add_rms": True, "weights_t": True}}  # fmt: skip
    if d.res["add_rms_agrees"] != "yes":
        variants = {k: v for k, v in variants.items() if "add_rms" not in v}
    model_us = {}
    for vname, kw in variants.items():
        mv, _ = d.build(**kw)
        res = model_us[vname] = {}
        for name in ("none", "sparq", "dense"):
            try:
                res[name] = d.time(d.graph(d.step_fn(mv, fns[name])), reps) * 1e6
            except Exception as e:
                res[name] = repr(e)[:200]
        if isinstance(res.get("sparq"), float) and isinstance(res.get("dense"), float):
            res["ratio"] = res["dense"] / res["sparq"]
        d.save("step_us_models", model_us)
        if d.dev == "cuda" and "--no-profile" not in argv and vname == "add_rms_weights_t":
            for name in ("sparq", "dense"):
                try:
                    d.save(f"profile_{vname}_{name}",
                           d.profile(d.graph(d.step_fn(mv, fns[name]))))  # fmt: skip
                except Exception as e:
                    d.save(f"profile_{vname}_{name}", {"error": repr(e)[:300]})
        del mv
    ok = {v: r["sparq"] for v, r in model_us.items() if isinstance(r.get("sparq"), float)}
    if ok:
        best = min(ok, key=ok.get)
        Path("/tmp/sparq_e2e_model.txt").write_text(
            ",".join(k for k in variants[best]) + "\n"
        )  # fmt: skip
        d.save("best_model_variant", best)
    if d.dev == "cuda" and "--no-profile" not in argv:
        for name in ("sparq", "dense", "none"):
            try:
                d.save(f"profile_{name}", d.profile(d.graph(d.step_fn(m, fns[name]))))
            except Exception as e:
                d.save(f"profile_{name}", {"error": repr(e)[:300]})
    d.save("seconds", time.monotonic() - t0)
    print("E2E_DIAG_JSON " + json.dumps(d.res, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv)
