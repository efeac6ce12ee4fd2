"""Bandwidth of the one-pass JIT cast's variants on this GPU; writes a tuned table with the best.

``python packages/fp8-scaling/benchmarks/cast_bw.py OUT_DIR [--budget S] [--smoke]`` (repo root):

1. correctness first (in ``--workers`` processes, which also compile the kernels for the main
   process through Triton's disk cache): every variant of the first pass -- the kernel of
   :mod:`fp8_scaling._spec_first` (``v3_*``) in several configurations, and the general cast
   kernel of :mod:`fp8_scaling._fastcast` (``v2_*``, the shipped first pass) -- runs the whole
   one-pass cast on an aligned and an odd shape, E4M3 and E5M2, with the right, a wrong and a
   NaN guess, and its bytes, amax and scales are compared with the two-pass torch reference;
   a failing variant is dropped;
2. per shape (``--shapes``, default 8192x8192 and 16384x28672) and format: the GPU time of one
   call (CUDA-graph replay of ``--reps`` calls) of every surviving variant, the guess right as in
   a training step (zero fill + first pass + check pass), next to three references measured in
   the same rounds: ``torch_clone`` (a copy of the bf16 tensor: 2 bytes read + 2 written per
   element, the same traffic as the cast, i.e. the roofline), ``torch_cast_t``
   (``x.to(fp8)`` and ``.t().contiguous()``, unscaled) and ``cast_amax_given`` (the JIT cast
   pass alone, amax already known: the previous 2-pass route's second pass), and the first
   pass of every variant alone (``first:<name>``: what the zero fill and check pass add).
   Variants are timed round-robin over ``--rounds`` rounds (rotated order) so clock changes
   hit all of them; the median per variant is reported in us and TB/s (4 bytes per element);
   the bytes of every variant at the timed shape are checked again after timing;
3. ``OUT_DIR/fp8_castbw.json`` (all timings) and ``OUT_DIR/fp8_tuned.json`` (the packaged table
   plus a ``cast_spec`` entry per shape naming the fastest variant, read by
   :func:`fp8_scaling._tuned.spec_first_config` through ``FP8_SCALING_TUNED``), both rewritten
   after every shape.

``--smoke`` runs on the CPU under ``TRITON_INTERPRET=1`` at tiny sizes (checks the script).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import torch

from fp8_scaling import _tuned
from fp8_scaling._fastcast import CastConfig, launch_cast2
from fp8_scaling._spec_first import SpecConfig
from fp8_scaling._speccast import first_pass, launch_spec_cast, spec_cast_ref

FMAX = {"e4m3": 448.0, "e5m2": 57344.0}
DT = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
VARIANTS: list[CastConfig | SpecConfig] = [
    CastConfig(64, 128, 4, 0, 0, 1),  # the general kernel (per-tile max): the former first pass
    # (bm, bn, warps, waves, amax, tma, tmode, group, stages, bits32, lean)
    SpecConfig(64, 128, 8, 8, 1, 0, 0, 8, 3),  # shipped (run 20: fastest at 16384x28672)
    SpecConfig(32, 128, 4, 8, 1, 0, 0, 8, 3),  # run 20: fastest at 8192^2
    SpecConfig(64, 128, 8, 4, 1, 0, 0, 8, 3),  # runs 18-19: fastest
    SpecConfig(64, 128, 8, 16, 1, 0, 0, 8, 3),
    SpecConfig(32, 128, 4, 16, 1, 0, 0, 8, 3),
    SpecConfig(64, 128, 8, 8, 1, 0, 0, 8, 3, 1),  # float32 bits
    # around run 21's fastest at 8192^2 (32x128, 4 warps, 16 per SM): smaller programs, more
    # of them, deeper pipelines
    SpecConfig(32, 128, 4, 16, 1, 0, 0, 8, 4),
    SpecConfig(32, 128, 2, 32, 1, 0, 0, 8, 3),
    SpecConfig(16, 128, 2, 32, 1, 0, 0, 8, 3),
    SpecConfig(32, 64, 2, 32, 1, 0, 0, 8, 3),
    SpecConfig(32, 256, 8, 8, 1, 0, 0, 8, 3),
    # lean first passes (no clamp, no inf/NaN test, float amax; see _spec_first): the shipped
    # tiles, and larger ones that the lighter arithmetic may now afford
    SpecConfig(32, 128, 4, 16, 1, 0, 0, 8, 3, 0, 1),
    SpecConfig(64, 128, 8, 16, 1, 0, 0, 8, 3, 0, 1),
    SpecConfig(64, 128, 4, 16, 1, 0, 0, 8, 3, 0, 1),
    SpecConfig(32, 128, 4, 8, 1, 0, 0, 8, 3, 0, 1),
    SpecConfig(64, 128, 8, 8, 1, 0, 0, 8, 3, 0, 1),
    SpecConfig(128, 128, 8, 8, 1, 0, 0, 8, 3, 0, 1),
    SpecConfig(64, 256, 8, 8, 1, 0, 0, 8, 3, 0, 1),
    SpecConfig(32, 128, 4, 16, 1, 0, 2, 8, 3, 0, 1),  # 16-bit transpose
    # The barrier ('sync') variants of the configurations that wrote wrong transposed bytes in
    # run 20 (one program per tile, packed 32-bit transposition, TMA) still wrote wrong bytes
    # in run 21 (all seven), so they are no longer measured.
]
SMOKE_VARIANTS: list[CastConfig | SpecConfig] = [
    CastConfig(16, 32, 1, 0, 0, 1, 2),
    SpecConfig(16, 32, 1, 0, 0, 1, 0, 2),
    SpecConfig(16, 32, 1, 2, 1, 0, 2, 2, 2),
    SpecConfig(16, 32, 1, 2, 1, 0, 0, 2, 2, 0, 1),
]


def vname(v) -> str:
    return v.name() if isinstance(v, SpecConfig) else "v2_" + v.name()


def _x(m: int, n: int, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(seed)  # on the GPU: 16384x28672 in ms
    return (torch.randn(m, n, generator=g, device=device) * 3).to(torch.bfloat16)


def _spec(x, fmt, guess, v, out_fp32=False):
    tiles = None if isinstance(v, SpecConfig) else v
    return launch_spec_cast(x, fmt, guess, 0, True, tiles, out_fp32, first=v)


def _same(a, b) -> bool:
    if a.dtype != torch.float32:
        a, b = a.view(torch.uint8), b.view(torch.uint8)
    return a.shape == b.shape and torch.equal(a, b)


def _diff(q, rq, qt, rqt) -> str:
    """Which copy differs, in how many bytes, and the first differing position."""
    out = []
    for name, a, b in (("q", q, rq), ("qt", qt, rqt)):
        if a.dtype != torch.float32:
            a, b = a.view(torch.uint8), b.view(torch.uint8)
        bad = a != b
        if bool(bad.any()):
            pos = tuple(int(i) for i in bad.nonzero()[0])
            out.append(f"{name}: {int(bad.sum())} of {bad.numel()} bytes, first at {pos}")
    return "; ".join(out) or "same"


def check(v, device: str, shapes, guesses=("right", "wrong", "nan")) -> str | None:
    """None when the one-pass cast with first pass ``v`` equals the reference, else why not."""
    out_fp32 = device != "cuda"
    try:
        for m, n in shapes:
            x = _x(m, n, device, m + n)
            x.view(-1)[3] = float("-inf")
            for fmt in ("e4m3", "e5m2"):
                rq, rqt, rinv, ra, rs = spec_cast_ref(x, None, fmt, 0, True)
                for kind in guesses:
                    g = {"right": rs, "wrong": rs * 4, "nan": rs * float("nan")}[kind]
                    q, qt, inv, a, s = _spec(x, fmt, g.reshape(1).clone(), v, out_fp32)
                    if out_fp32:
                        q, qt = q.to(rq.dtype), qt.to(rq.dtype)
                    if not (torch.equal(a, ra) and torch.equal(inv, rinv) and torch.equal(s, rs)):
                        return f"{fmt} {m}x{n} guess {kind}: amax/scale differ"
                    if not (_same(q, rq) and _same(qt, rqt)):
                        return f"{fmt} {m}x{n} guess {kind}: bytes differ ({_diff(q, rq, qt, rqt)})"
    except Exception as exc:  # compile or launch failure: the variant is dropped
        return f"{type(exc).__name__}: {str(exc)[:240]}"
    return None


def _worker(variants: list, shapes, device: str) -> dict:
    torch.set_num_threads(1)
    return {vname(v): check(v, device, shapes) for v in variants}


def checks(variants, shapes, device: str, workers: int, timeout: float) -> dict:
    names = [vname(v) for v in variants]
    if workers <= 1:
        return {vname(v): check(v, device, shapes) for v in variants}
    import concurrent.futures as cf
    import multiprocessing as mp

    chunks = [list(variants[i::workers]) for i in range(workers)]
    pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    res: dict = {}
    try:
        futs = [pool.submit(_worker, ch, shapes, device) for ch in chunks if ch]
        end = time.monotonic() + timeout
        for f in futs:
            res.update(f.result(timeout=max(1.0, end - time.monotonic())))
        pool.shutdown()
    except Exception as exc:
        print(f"parallel checks failed ({type(exc).__name__}: {exc}); checking the rest here")
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        todo = {vname(v): v for v in variants}
        for i, nm in enumerate(names):  # the first three (most promising) here, not the rest
            if nm not in res:
                ok = i < 3
                res[nm] = check(todo[nm], device, shapes) if ok else "not checked: out of time"
    return res


class Graphed:
    """``reps`` calls of ``fn`` captured in one CUDA graph (the plain call on the CPU)."""

    def __init__(self, fn, device: str, reps: int):
        self.fn, self.device, self.reps = fn, device, reps
        if device != "cuda":
            return
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            fn()
        torch.cuda.current_stream().wait_stream(s)
        self.g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.g):
            for _ in range(reps):
                fn()
        self.g.replay()
        torch.cuda.synchronize()

    def seconds(self) -> float:
        if self.device != "cuda":
            t0 = time.perf_counter()
            self.fn()
            return time.perf_counter() - t0
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        self.g.replay()
        e1.record()
        e1.synchronize()
        return e0.elapsed_time(e1) / 1e3 / self.reps


def time_shape(m, n, fmt, variants, device, rounds, reps, left) -> dict:
    """Median GPU us per call and TB/s of every variant and reference on an (m, n) input."""
    x = _x(m, n, device)
    rq, rqt, rinv, ra, rs = spec_cast_ref(x, None, fmt, 0, True)
    guess = rs.reshape(1).clone()
    dst = torch.empty_like(x)
    jit_cfg = _tuned.cast_config(x, delayed=False) or CastConfig(64, 128, 4)
    fns = {
        "torch_clone": lambda: dst.copy_(x),
        "torch_cast_t": lambda: x.to(DT[fmt]).t().contiguous(),
        "cast_amax_given": lambda: launch_cast2(x, fmt, FMAX[fmt], jit_cfg, amax=ra),
    }
    for v in variants:
        fns[vname(v)] = lambda v=v: _spec(x, fmt, guess, v, device != "cuda")
    # the first pass alone (no zero fill, no check pass) of every variant: "first:<name>"
    q = torch.empty((m, n), dtype=torch.float32 if device != "cuda" else DT[fmt], device=device)
    qt = torch.empty((n, m), dtype=q.dtype, device=device)
    amax = torch.zeros((), dtype=torch.float32, device=device)
    g0 = guess.reshape(())
    for v in variants:
        spec = v if isinstance(v, SpecConfig) else None
        tile = v if isinstance(v, CastConfig) else jit_cfg
        fns["first:" + vname(v)] = lambda s=spec, t=tile: first_pass(
            x, g0, q, qt, amax, fmt, 0, t, s
        )
    graphs, samples, errors = {}, {}, {}
    for k, fn in fns.items():
        try:
            graphs[k] = Graphed(fn, device, reps)
            samples[k] = []
        except Exception as exc:
            errors[k] = f"{type(exc).__name__}: {str(exc)[:200]}"
    keys = list(graphs)
    for r in range(rounds):
        if left() < 3:
            break
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            samples[k].append(graphs[k].seconds())
    del graphs
    out = {}
    for k, xs in samples.items():
        if not xs:
            continue
        us = statistics.median(xs) * 1e6
        q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
        out[k] = {
            "us": round(us, 2),
            "q1_us": round(q[0] * 1e6, 2),
            "q3_us": round(q[2] * 1e6, 2),
            "tb_per_s": round(4 * m * n / (us * 1e-6) / 1e12, 3),
            "rounds": len(xs),
        }
    # bytes at the timed shape, once more (the timed launches themselves are not kept)
    for v in variants:
        if vname(v) in out:
            q, qt, inv, a, s = _spec(x, fmt, guess, v, device != "cuda")
            if device != "cuda":
                q, qt = q.to(rq.dtype), qt.to(rq.dtype)
            ok = _same(q, rq) and _same(qt, rqt) and torch.equal(a, ra) and torch.equal(s, rs)
            out[vname(v)]["bytes_ok"] = bool(ok and torch.equal(inv, rinv))
            del q, qt
    return {"timings": out, "errors": errors}


def best_variant(timings: dict, variants) -> tuple[object | None, str | None]:
    ok = [
        v
        for v in variants
        if vname(v) in timings and timings[vname(v)].get("bytes_ok", True) is not False
    ]
    if not ok:
        return None, None
    v = min(ok, key=lambda v: timings[vname(v)]["us"])
    return v, vname(v)


def table_entry(v, us: float) -> dict:
    d = dataclasses.asdict(v)
    d["kernel"] = "v3" if isinstance(v, SpecConfig) else "v2"
    d["us"] = us
    return d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--budget", type=float, default=90.0)
    ap.add_argument("--shapes", default="8192x8192,16384x28672")
    ap.add_argument("--formats", default="e4m3,e5m2")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--only", default="", help="comma list of variant names to measure")
    args = ap.parse_args(argv)
    start = time.monotonic()

    def left() -> float:
        return args.budget - (time.monotonic() - start)

    device = "cpu" if args.smoke else "cuda"
    variants = SMOKE_VARIANTS if args.smoke else VARIANTS
    if args.only:
        keep = set(args.only.split(","))
        variants = [v for v in variants if vname(v) in keep]
        if not variants:
            raise SystemExit(f"--only matched no variant: {args.only}")
    shapes = [tuple(int(p) for p in s.split("x")) for s in args.shapes.split(",")]
    chk_shapes = [(48, 80), (37, 53)] if args.smoke else [(1024, 1536), (1000, 1496)]
    if args.smoke:
        shapes = [(64, 96)]
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    res: dict = {
        "gpu": gpu,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "bytes_per_element": 4,
        "checks": {},
        "shapes": {},
    }
    t0 = time.monotonic()
    workers = args.workers if device == "cuda" else 1
    res["checks"] = checks(variants, chk_shapes, device, workers, max(10.0, left() * 0.7))
    res["check_seconds"] = round(time.monotonic() - t0, 1)
    for k, why in res["checks"].items():
        print(f"check {k:<34} {'ok' if why is None else 'FAILED: ' + why}", flush=True)
    good = [v for v in variants if res["checks"].get(vname(v)) is None]
    table = json.loads(json.dumps(_tuned.load_table() or {"format": 1, "gpus": {}}))
    entry = table.setdefault("gpus", {}).setdefault(gpu, {})
    # keep the provenance of the other entries only (cast_spec's own is rewritten below)
    source0 = str(table.get("source", "")).split(" cast_spec(_traced):")[0]
    source0 = source0.split("(cast_spec entries); ")[-1]
    spec_entries = entry.setdefault("cast_spec", {})
    traced_entries = entry.setdefault("cast_spec_traced", {})
    out_json, out_tab = args.out / "fp8_castbw.json", args.out / "fp8_tuned.json"
    for m, n in shapes:
        for fmt in args.formats.split(","):
            if left() < 8:
                print(f"budget spent: {m}x{n} {fmt} not timed", flush=True)
                continue
            r = time_shape(m, n, fmt, good, device, args.rounds, args.reps, left)
            res["shapes"][f"{m}x{n}_{fmt}"] = r
            tim = r["timings"]
            print(f"== {m}x{n} {fmt}: us per call (TB/s at 4 B/element), median of rounds")
            for k in sorted(tim, key=lambda k: tim[k]["us"]):
                t = tim[k]
                flag = "" if t.get("bytes_ok", True) else "  BYTES DIFFER"
                print(f"  {k:<34} {t['us']:9.1f} [{t['q1_us']:.1f}, {t['q3_us']:.1f}] "
                      f"{t['tb_per_s']:6.2f}{flag}", flush=True)  # fmt: skip
            v, nm = best_variant(tim, good)
            if v is not None and fmt == "e4m3":  # the table is keyed by shape; E4M3 decides
                spec_entries[f"{m}x{n}"] = table_entry(v, tim[nm]["us"])
                print(f"  -> cast_spec {m}x{n}: {nm}")
                plain = [u for u in good if not getattr(u, "tma", 0)]  # for traced launches
                v, nm = best_variant(tim, plain)
                if v is not None:
                    traced_entries[f"{m}x{n}"] = table_entry(v, tim[nm]["us"])
                    print(f"  -> cast_spec_traced {m}x{n}: {nm}")
            table["source"] = f"benchmarks/cast_bw.py on one {gpu}, {res['date']} (cast_spec "
            table["source"] += "entries); " + source0
            res["tuned_table"] = table  # also here, for runs that keep fewer files
            out_json.write_text(json.dumps(res, indent=1))
            out_tab.write_text(json.dumps(table, indent=1))
    res["seconds"] = round(time.monotonic() - start, 1)
    out_json.write_text(json.dumps(res, indent=1))
    print(f"cast_bw done in {res['seconds']} s -> {out_json}, {out_tab}")
    return 0


if __name__ == "__main__":
    if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
        print("cast_bw.py needs a CUDA GPU (or --smoke with TRITON_INTERPRET=1)")
    raise SystemExit(main())
