"""Sweep the cast-kernel launch configurations on this GPU and write the tuned table.

``python packages/fp8-scaling/benchmarks/sweep_cast.py --out DIR [--budget S]`` (repo root):

1. correctness first: every configuration of ``fp8_scaling._fastcast`` (JIT and delayed cast,
   amax) is compared byte for byte with the pure-torch references on an odd and an even
   shape; a configuration that fails (or does not compile) is dropped;
2. GPU time (CUDA-graph replay of 10 launches) of every surviving configuration, and of the
   self-tuning kernels of ``fp8_scaling._kernels`` ("legacy"), for the 8192^2 cast and the
   activation, weight and gradient shapes of the layer shapes in ``FP8_BENCH_SHAPES``;
3. the fastest per shape goes into ``DIR/fp8_tuned.json`` (keyed by GPU name, read by
   ``fp8_scaling._tuned`` through ``FP8_SCALING_TUNED``), all timings into
   ``DIR/fp8_sweep.json``; both are rewritten after every shape, so a cut run keeps them.

``--smoke`` runs it on the CPU under ``TRITON_INTERPRET=1`` at tiny sizes (checks the script).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from fp8_scaling._cast_ops import cast_transpose_ref, delayed_cast_ref
from fp8_scaling._fastcast import AmaxConfig, CastConfig, launch_amax2, launch_cast2
from fp8_scaling._kernels import launch_amax, launch_cast_transpose
from fp8_scaling._scaling import amax as amax_ref

# (bm, bn, warps, tmode, waves, stages); group 8
CAST_CFGS = [  # the fastest of the 2026-11-29 19:44 H200 sweep first (a cut run times those)
    CastConfig(64, 128, 4, 0, 0, 1),
    CastConfig(128, 128, 4, 0, 0, 1),
    CastConfig(128, 128, 8, 0, 4, 2),
    CastConfig(64, 128, 4, 0, 8, 3),
    CastConfig(128, 128, 4, 0, 2, 2),
    CastConfig(128, 64, 4, 2, 0, 1),
    CastConfig(128, 128, 8, 0, 0, 1),
    CastConfig(128, 256, 8, 0, 0, 1),
    CastConfig(128, 128, 8, 1, 0, 1),
    CastConfig(128, 128, 8, 2, 2, 2),
    CastConfig(128, 128, 8, 0, 2, 3),
]
AMAX_CFGS = [
    AmaxConfig(8192, 8, 4),
    AmaxConfig(4096, 8, 8),
    AmaxConfig(16384, 16, 2),
    AmaxConfig(2048, 4, 16),
    AmaxConfig(8192, 8, 0),
    AmaxConfig(4096, 4, 32),
    AmaxConfig(8192, 8, 4, 3),
    AmaxConfig(4096, 4, 8, 3),
]
SMOKE_CAST = [CastConfig(16, 32, 1, 0, 0, 1), CastConfig(32, 16, 1, 2, 2, 1)]
SMOKE_AMAX = [AmaxConfig(64, 1, 1), AmaxConfig(32, 1, 0)]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != torch.float32:
        a, b = a.view(torch.uint8), b.view(torch.uint8)
    return a.shape == b.shape and torch.equal(a, b)


def _x(m: int, n: int, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    return (torch.randn(m, n, generator=g) * 3).to(device, torch.bfloat16)


def check_cast(cfg: CastConfig, device: str, cases, out_fp32: bool) -> str | None:
    """None when the casts with ``cfg`` match the references on ``cases``, else why not.

    ``cases``: ``((m, n), fmt, delayed)`` triples; bytes (or, with ``out_fp32``, the scaled
    float32 values cast by torch) are compared with the pure-torch references.
    """
    fmaxes = {"e4m3": 448.0, "e5m2": 57344.0}
    try:
        for (m, n), fmt, delayed in cases:
            x = _x(m, n, device, 1)
            x.view(-1)[7] = 1e4  # saturates in the delayed cast (scale 16)
            if delayed:
                s = torch.tensor(16.0, device=device)
                q, qt, _, am = launch_cast2(x, fmt, fmaxes[fmt], cfg, scale=s, out_fp32=out_fp32)
                rq, rqt, ram = delayed_cast_ref(x, s, fmt, True)
                extra_ok = torch.equal(am, ram)
            else:
                a = amax_ref(x)
                q, qt, inv, _ = launch_cast2(
                    x, fmt, fmaxes[fmt], cfg, amax=a, margin=1, out_fp32=out_fp32
                )
                rq, rqt, rinv = cast_transpose_ref(x, a, fmt, 1, True)
                extra_ok = torch.equal(inv, rinv)
            if out_fp32:
                q, qt = q.to(rq.dtype), qt.to(rq.dtype)
            if not (extra_ok and _same(q, rq) and _same(qt, rqt)):
                mode = "delayed" if delayed else "JIT"
                return f"{mode} {fmt} {m}x{n} differs from the reference"
    except Exception as exc:  # a compile or launch failure drops the configuration
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return None


def check_amax(cfg: AmaxConfig, device: str, shapes) -> str | None:
    try:
        for m, n in shapes:
            x = _x(m, n, device, 2)
            if not torch.equal(launch_amax2(x, cfg), amax_ref(x)):
                return f"amax {m}x{n} differs"
            x.view(-1)[-1] = float("nan")
            if launch_amax2(x, cfg).item() != float("inf"):
                return "NaN not counted as inf"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return None


def _worker_checks(jobs: list, basic: list, chk_shapes: list, device: str) -> list:
    """Run in a worker process: the correctness checks of ``jobs`` (kind, config fields).

    Compiling the kernels is the slow part of the sweep; workers compile in parallel and
    Triton's on-disk cache hands the compiled kernels to the main process.
    """
    torch.set_num_threads(1)
    out = []
    for kind, fields in jobs:
        if kind == "cast":
            cfg = CastConfig(**fields)
            out.append(check_cast(cfg, device, basic, out_fp32=device != "cuda"))
        elif kind == "amax":
            out.append(check_amax(AmaxConfig(**fields), device, chk_shapes))
        else:  # the self-tuning kernels: compile (and cache) all their configurations
            try:
                x = _x(*chk_shapes[-1], device)
                launch_amax(x)
                launch_cast_transpose(x, "e4m3", 448.0, amax=amax_ref(x))
                launch_cast_transpose(x, "e4m3", 448.0, scale=torch.tensor(16.0, device=device))
                out.append(None)
            except Exception as exc:
                out.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    return out


def parallel_checks(
    cast_cfgs, amax_cfgs, basic, chk_shapes, workers, device, timeout
) -> dict | None:
    """``{config name: None or why}`` from ``workers`` processes, or None if the pool fails."""
    import concurrent.futures as cf
    import multiprocessing as mp

    jobs = [("legacy", {})] + [("cast", dataclasses.asdict(c)) for c in cast_cfgs]
    jobs += [("amax", dataclasses.asdict(c)) for c in amax_cfgs]
    names = ["legacy"] + [c.name() for c in (*cast_cfgs, *amax_cfgs)]
    # the self-tuning kernels (about 16 compiles) get a worker of their own
    rest = workers - 1
    chunks = [[0]] + [list(range(1 + i, len(jobs), rest)) for i in range(rest)]
    pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    try:
        futs = [
            pool.submit(_worker_checks, [jobs[i] for i in ch], basic, chk_shapes, device)
            for ch in chunks
        ]
        res: dict = {}
        end = time.monotonic() + timeout
        for ch, fut in zip(chunks, futs):
            for i, why in zip(ch, fut.result(timeout=max(1.0, end - time.monotonic()))):
                res[names[i]] = why
        pool.shutdown()
        return res
    except Exception as exc:  # e.g. out of time: stop the workers, check in this process
        print(f"parallel checks failed ({type(exc).__name__}: {exc}); checking serially")
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        return None


def gpu_time(fn, device: str, reps: int = 10, replays: int = 5) -> float:
    """Seconds per call of ``fn``: CUDA-graph replay of ``reps`` calls (median of replays)."""
    if device != "cuda":
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        g.replay()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1) / 1e3 / reps)
    del g
    return statistics.median(times)


def time_shape(m: int, n: int, device: str, amax_cfgs, cast_cfgs, left) -> dict:
    """GPU seconds per call of every variant on an (m, n) bf16 input.

    ``amax``: the amax kernels alone; ``cast_jit``: the fastest amax kernel followed by the JIT
    cast (as in a layer: the cast starts while the tail of the input read by the amax pass is
    still in L2); ``cast_delayed``: the one-pass delayed cast.
    """
    x = _x(m, n, device)
    s = torch.tensor(16.0, device=device)
    res: dict = {"amax": {}, "cast_jit": {}, "cast_delayed": {}, "legacy_pair": {}}
    res["amax"]["legacy"] = gpu_time(lambda: launch_amax(x), device)
    for cfg in amax_cfgs:
        res["amax"][cfg.name()] = gpu_time(lambda cfg=cfg: launch_amax2(x, cfg), device)
    best = min(res["amax"], key=res["amax"].get)
    acfg = next((c for c in amax_cfgs if c.name() == best), None)

    def amax_best():
        return launch_amax(x) if acfg is None else launch_amax2(x, acfg)

    res["cast_jit"]["legacy"] = gpu_time(
        lambda: launch_cast_transpose(x, "e4m3", 448.0, amax=amax_best()), device
    )
    res["cast_delayed"]["legacy"] = gpu_time(
        lambda: launch_cast_transpose(x, "e4m3", 448.0, scale=s), device
    )
    for cfg in cast_cfgs:
        if left() < 4:
            break
        res["cast_jit"][cfg.name()] = gpu_time(
            lambda cfg=cfg: launch_cast2(x, "e4m3", 448.0, cfg, amax=amax_best()), device
        )
        res["cast_delayed"][cfg.name()] = gpu_time(
            lambda cfg=cfg: launch_cast2(x, "e4m3", 448.0, cfg, scale=s), device
        )
    res["legacy_pair"]["legacy"] = gpu_time(  # the previous default: both legacy kernels
        lambda: launch_cast_transpose(x, "e4m3", 448.0, amax=launch_amax(x)), device
    )
    return res


def compiled_check(device: str) -> str | None:
    """None when a torch.compile'd Float8Linear with the tuned kernels matches eager mode.

    The layer (2048 x 1024 -> 2048, bf16) launches the cast kernels from inductor's code; the
    FP8 operands are the same bytes in both modes, so outputs and gradients must agree to bf16
    rounding.
    """
    from fp8_scaling import Float8Linear, JustInTimeScaling

    try:
        g = torch.Generator(device="cpu").manual_seed(0)
        x0 = torch.randn(2048, 1024, generator=g).to(device, torch.bfloat16)
        dy = torch.randn(2048, 2048, generator=g).to(device, torch.bfloat16)
        lin = torch.nn.Linear(1024, 2048, bias=False, device=device, dtype=torch.bfloat16)
        # cast_backend="triton": our kernels from inductor's code at this size too (the
        # default route takes them from AUTO_TRITON_MIN_NUMEL elements)
        layer = Float8Linear.from_linear(lin, JustInTimeScaling(), cast_backend="triton")
        outs = []
        for fn in (layer, torch.compile(layer) if device == "cuda" else layer):
            x = x0.clone().requires_grad_(True)
            layer.weight.grad = None
            y = fn(x)
            y.backward(dy)
            outs.append((y.detach().float(), x.grad.float(), layer.weight.grad.float()))
        for a, b in zip(*outs):
            err = float((a - b).norm() / b.norm().clamp_min(1e-30))
            if not err < 1e-2:  # identical FP8 operands: only the GEMM epilogue may differ
                return f"compiled differs from eager (relative error {err:.3g})"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return None


def cast_shapes(smoke: bool) -> list[tuple[int, int]]:
    if smoke:
        return [(64, 96), (32, 64)]
    layers = os.environ.get("FP8_BENCH_SHAPES", "4096x4096x4096,8192x8192x8192,16384x8192x28672")
    out = [(8192, 8192)]
    for s in layers.split(","):
        m, k, n = (int(v) for v in s.split("x"))
        for shp in ((m, k), (n, k), (m, n)):  # activation, weight, gradient
            if shp not in out:
                out.append(shp)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--budget", type=float, default=110.0, help="wall seconds for the sweep")
    p.add_argument("--smoke", action="store_true", help="CPU interpreter, tiny sizes")
    a = p.parse_args()
    t_start = time.monotonic()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if a.smoke else "cuda"
    gpu = "cpu-interpreter" if a.smoke else torch.cuda.get_device_name(0)
    cast_cfgs = SMOKE_CAST if a.smoke else CAST_CFGS
    amax_cfgs = SMOKE_AMAX if a.smoke else AMAX_CFGS
    sweep: dict = {"gpu": gpu, "torch": torch.__version__, "rejected": {}, "shapes": {}}
    table: dict = {"format": 1, "gpus": {gpu: {"cast_jit": {}, "cast_delayed": {}, "amax": {}}}}
    entry = table["gpus"][gpu]

    def left() -> float:
        return a.budget - (time.monotonic() - t_start)

    def write() -> None:
        sweep["seconds"] = round(time.monotonic() - t_start, 1)
        (out / "fp8_sweep.json").write_text(json.dumps(sweep, indent=1))
        (out / "fp8_tuned.json").write_text(json.dumps(table, indent=1))

    # 1. correctness of every configuration on an even shape (the unmasked E4M3 kernels that
    # are timed below); a configuration that wins a shape is also checked on an odd shape
    # (masked tiles) and in E5M2 (gradients) before it enters the table
    odd, even = ((37, 53), (64, 96)) if a.smoke else ((333, 1000), (1024, 2048))
    chk_shapes = [odd, even]
    basic = [(even, "e4m3", False), (even, "e4m3", True)]
    full = [(odd, "e4m3", False)]
    full += [] if a.smoke else [(even, "e5m2", False), (even, "e5m2", True)]
    full_ok: dict = {}

    def passes_full(cfg: CastConfig) -> bool:
        if cfg.name() not in full_ok:
            why = check_cast(cfg, device, full, out_fp32=a.smoke)
            full_ok[cfg.name()] = why is None
            if why:
                sweep["rejected"][cfg.name()] = why
                print(f"check {cfg.name():<26} {why}", flush=True)
        return full_ok[cfg.name()]

    workers = max(1, int(os.environ.get("OMP_NUM_THREADS", "4")) - 1)
    pre = None
    if workers > 1:
        pre = parallel_checks(
            cast_cfgs, amax_cfgs, basic, chk_shapes, workers, device, max(10.0, left() - 50)
        )
        if pre is not None:
            dt = time.monotonic() - t_start
            print(f"== checks (and compiles) in {workers} processes done at {dt:.0f} s")
    pre = pre or {}
    ok_cast = []
    for cfg in cast_cfgs:
        if cfg.name() in pre:
            why = pre[cfg.name()]
        else:
            why = check_cast(cfg, device, basic, out_fp32=a.smoke)
        if why:
            sweep["rejected"][cfg.name()] = why
        else:
            ok_cast.append(cfg)
        print(f"check {cfg.name():<26} {why or 'ok'}", flush=True)
    ok_amax = []
    for cfg in amax_cfgs:
        why = pre[cfg.name()] if cfg.name() in pre else check_amax(cfg, device, chk_shapes)
        if why:
            sweep["rejected"][cfg.name()] = why
        else:
            ok_amax.append(cfg)
        print(f"check {cfg.name():<26} {why or 'ok'}", flush=True)
    write()
    print(f"== correctness done at {time.monotonic() - t_start:.0f} s", flush=True)

    # 2. GPU time per shape (the acceptance shape first); keep time for the compiled check
    reserve = 0 if a.smoke else 25
    for m, n in cast_shapes(a.smoke):
        if left() < reserve + 8:
            print(f"budget spent: {m}x{n} and later shapes not timed", flush=True)
            break
        key = f"{m}x{n}"
        res = time_shape(m, n, device, ok_amax, ok_cast, left)
        by_name = {c.name(): c for c in (*ok_cast, *ok_amax)}
        best = {}
        for kind in ("amax", "cast_jit", "cast_delayed"):
            ranked = sorted(res[kind], key=res[kind].get)
            if kind != "amax":  # the fastest configuration that also passes the full check
                ranked = [c for c in ranked if c == "legacy" or passes_full(by_name[c])]
            name = ranked[0]
            best[kind] = name
            row = {"kernel": "legacy"} if name == "legacy" else {"kernel": "v2"}
            if name != "legacy":
                row.update(dataclasses.asdict(by_name[name]))
            row["us"] = round(res[kind][name] * 1e6, 2)
            row["legacy_us"] = round(res[kind]["legacy"] * 1e6, 2)
            entry[kind][str(m * n) if kind == "amax" else key] = row
        gb = 4.0 * m * n / 1e9  # read bf16 once, write two FP8 copies
        summary = {
            "best": best,
            "jit_us": round(res["cast_jit"][best["cast_jit"]] * 1e6, 2),  # amax + cast
            "jit_legacy_us": round(res["legacy_pair"]["legacy"] * 1e6, 2),
            "delayed_us": round(res["cast_delayed"][best["cast_delayed"]] * 1e6, 2),
            "delayed_TBps": round(gb / 1e3 / res["cast_delayed"][best["cast_delayed"]], 3),
        }
        sweep["shapes"][key] = {"us": {k: {c: round(t * 1e6, 2) for c, t in v.items()}
                                       for k, v in res.items()}, **summary}  # fmt: skip
        write()
        print(
            f"{key:>12}: JIT amax+cast {summary['jit_us']:.1f} us (legacy "
            f"{summary['jit_legacy_us']:.1f}), delayed 1-pass {summary['delayed_us']:.1f} us "
            f"({summary['delayed_TBps']} TB/s); best {best}",
            flush=True,
        )
        if device == "cuda":
            torch.cuda.empty_cache()
    # 3. the tuned kernels launched from torch.compile'd code (the default compiled path);
    # written as failed first, so a run cut during the check keeps them out of compiled code
    entry["compiled_ok"] = False
    sweep["compiled_check"] = "not finished"
    write()
    os.environ["FP8_SCALING_TUNED"] = str(out / "fp8_tuned.json")
    from fp8_scaling import _tuned

    _tuned.reset_table()
    why = compiled_check(device)
    entry["compiled_ok"] = why is None
    sweep["compiled_check"] = why or "ok"
    print(f"compiled layer with the tuned kernels: {why or 'ok'}", flush=True)
    write()
    print(f"== sweep done in {time.monotonic() - t_start:.0f} s -> {out}/fp8_tuned.json")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no exit handlers: a stopped worker pool must not delay the exit
