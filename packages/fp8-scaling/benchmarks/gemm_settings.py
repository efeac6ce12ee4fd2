"""The three FP8 GEMMs of a ``Float8Linear`` step under different ``torch._scaled_mm`` settings.

``python packages/fp8-scaling/benchmarks/gemm_settings.py OUT_DIR [--shapes MxKxN,...]
[--carveouts 0,4,8,16] [--budget S] [--device cuda|cpu]`` from the repository root.

Per layer shape, the operands are built exactly as the layer passes them (power-of-two
per-tensor scales, E4M3 input and weight, E5M2 gradient; output ``x8 @ w8.t()``, grad-input
``g8 @ (w8^T contiguous).t()``, grad-weight ``(g8^T contiguous) @ (x8^T contiguous).t()``),
then:

1. accuracy: SQNR (dB) of each GEMM's bf16 result, with and without ``use_fast_accum``, against
   the float64 product of the same FP8 operands (so only the accumulation and the final
   rounding count), next to the SQNR of that float64 product rounded to bf16 (the floor);
2. GPU time per call (CUDA-graph replay of ``--reps`` calls, median over ``--rounds``
   round-robin rounds) of each GEMM with ``use_fast_accum`` False/True and every SM carve-out
   (``torch._C._set_sm_carveout_experimental``: cuBLASLt leaves that many SMs free), plus the
   bf16 ``x @ w.t()`` (the GEMM-only ceiling), and the cuBLAS kernel each configuration runs
   (``torch.profiler``);
3. overlap: the grad-input GEMM on one stream and a memory-bound copy of an 8192^2-sized bf16
   tensor (the traffic of one cast with transposed copy) on another, captured in one graph,
   against the two run one after the other, per carve-out: how much of the copy hides behind
   the GEMM, i.e. whether moving casts to a side stream can pay.

Writes ``OUT_DIR/fp8_gemm.json`` after every section. On the CPU (smoke test) the GEMMs are the
float64 emulation, timed with ``perf_counter``, and the overlap section is skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import torch

GEMMS = ("output", "grad_input", "grad_weight")


def _q(t: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Power-of-two per-tensor scaling as the JIT recipe does: (FP8 tensor, dequant scale)."""
    fmax = torch.finfo(dtype).max
    amax = t.abs().max().float().clamp_min(1e-30)
    scale = torch.exp2(torch.floor(torch.log2(fmax / amax)).clamp(-31, 31))
    return (t.float() * scale).clamp(-fmax, fmax).to(dtype), (1.0 / scale).reshape(())


def operands(m: int, k: int, n: int, device: str) -> dict:
    g0 = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(m, k, generator=g0).to(device, torch.bfloat16)
    w = (torch.randn(n, k, generator=g0) / k**0.5).to(device, torch.bfloat16)
    g = torch.randn(m, n, generator=g0).to(device, torch.bfloat16)
    x8, sx = _q(x, torch.float8_e4m3fn)
    w8, sw = _q(w, torch.float8_e4m3fn)
    g8, sg = _q(g, torch.float8_e5m2)
    wt8, xt8, gt8 = w8.t().contiguous(), x8.t().contiguous(), g8.t().contiguous()
    return {
        "output": (x8, w8.t(), sx, sw),
        "grad_input": (g8, wt8.t(), sg, sw),
        "grad_weight": (gt8, xt8.t(), sg, sx),
        "bf16": (x, w.t()),
    }


def _mm(a, b, sa, sb, fast: bool, device: str) -> torch.Tensor:
    if device == "cuda":
        return torch._scaled_mm(
            a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, use_fast_accum=fast
        )
    return (a.double() @ b.double() * (sa.double() * sb.double())).to(torch.bfloat16)


def _sqnr(got: torch.Tensor, ref: torch.Tensor) -> float:
    err = (got.double() - ref).norm().clamp_min(1e-300)
    return round(float(20 * torch.log10(ref.norm() / err)), 2)


def accuracy(ops: dict, device: str) -> dict:
    out = {}
    for name in GEMMS:
        a, b, sa, sb = ops[name]
        ref = a.double() @ b.double() * (sa.double() * sb.double())
        row = {"bf16_rounding_floor_db": _sqnr(ref.to(torch.bfloat16), ref)}
        for fast in (False, True):
            y = _mm(a, b, sa, sb, fast, device)
            row[f"fast_accum_{fast}_db"] = _sqnr(y, ref)
            rel = ((y.double() - ref).abs().max() / ref.abs().max()).item()
            row[f"fast_accum_{fast}_max_rel_err"] = float(f"{rel:.3g}")
        out[name] = row
        del ref
    return out


def _set_carveout(c: int | None, device: str) -> None:
    if device == "cuda":
        torch._C._set_sm_carveout_experimental(c if c else None)


def _graph(fn, reps: int, device: str, carve: int | None = None):
    """A replayer of ``reps`` calls of ``fn`` (CUDA graph; on the CPU the calls themselves)."""
    if device != "cuda":
        return lambda: [fn() for _ in range(reps)]
    _set_carveout(carve, device)
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            fn()
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=s):
            for _ in range(reps):
                fn()
    finally:
        _set_carveout(None, device)
    replay = g.replay
    return replay


def _time(replay, device: str) -> float:
    if device != "cuda":
        t0 = time.perf_counter()
        replay()
        return time.perf_counter() - t0
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    replay()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / 1e3


def _kernel_names(fn, device: str, carve: int | None) -> list[str]:
    if device != "cuda":
        return []
    from torch.profiler import ProfilerActivity, profile

    _set_carveout(carve, device)
    try:
        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
    finally:
        _set_carveout(None, device)
    names = [e.key for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    return [n[:120] for n in names]


def round_robin(fns: dict, rounds: int, device: str, deadline: float, per_call: int) -> dict:
    times: dict = {k: [] for k in fns}
    keys = list(fns)
    for r in range(rounds):
        if time.monotonic() > deadline and r >= 3:
            break
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            times[key].append(_time(fns[key], device) / per_call)
    out = {}
    for key, ts in times.items():
        q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0]] * 3
        out[key] = {"us": round(1e6 * statistics.median(ts), 2), "q1_us": round(1e6 * q[0], 2),
                    "q3_us": round(1e6 * q[2], 2), "rounds": len(ts)}  # fmt: skip
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--shapes", default="8192x8192x8192")
    ap.add_argument("--carveouts", default="0,4,8,16")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    dev = args.device
    t_start = time.monotonic()
    deadline = t_start + args.budget
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "fp8_gemm.json"
    res: dict = {
        "gpu": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "shapes": {},
    }
    carves = [int(c) for c in args.carveouts.split(",")]
    for shape in args.shapes.split(","):
        if time.monotonic() > deadline - 10:
            print(f"budget spent: {shape} skipped", flush=True)
            break
        m, k, n = (int(v) for v in shape.split("x"))
        rec: dict = {}
        res["shapes"][shape] = rec
        ops = operands(m, k, n, dev)
        rec["accuracy"] = accuracy(ops, dev)
        for name, row in rec["accuracy"].items():
            print(f"{shape} {name:<12} SQNR vs float64: fast_accum off "
                  f"{row['fast_accum_False_db']} dB, on {row['fast_accum_True_db']} dB "
                  f"(bf16 floor {row['bf16_rounding_floor_db']} dB)", flush=True)  # fmt: skip
        path.write_text(json.dumps(res, indent=1))
        fns, calls = {}, {}
        for name in GEMMS:
            a, b, sa, sb = ops[name]
            for fast in (False, True):
                for c in carves:
                    key = f"{name}/fa{int(fast)}/c{c}"

                    def call(a=a, b=b, sa=sa, sb=sb, f=fast):
                        return _mm(a, b, sa, sb, f, dev)

                    calls[key] = (call, c)
                    fns[key] = _graph(call, args.reps, dev, c)
        xa, wb = ops["bf16"]

        def bf16_mm(xa=xa, wb=wb):
            return xa @ wb

        calls["bf16/c0"] = (bf16_mm, 0)
        fns["bf16/c0"] = _graph(calls["bf16/c0"][0], args.reps, dev)
        left = deadline - time.monotonic()
        tim = round_robin(fns, args.rounds, dev, time.monotonic() + 0.45 * left, args.reps)
        flops = 2.0 * m * k * n
        for key, t in tim.items():
            t["tflops"] = round(flops / (t["us"] * 1e-6) / 1e12, 1)
            if time.monotonic() < deadline - 5:
                try:  # the kernel names are a nicety: a profiler failure costs only them
                    t["kernels"] = _kernel_names(calls[key][0], dev, calls[key][1])
                except Exception as exc:
                    t["kernels"] = [f"profiler failed: {type(exc).__name__}"]
        rec["timing"] = tim
        del fns
        for key in sorted(tim, key=lambda k: (k.split("/")[0], tim[k]["us"])):
            t = tim[key]
            kn = ", ".join(t.get("kernels", []))[:90]
            print(f"  {key:<22} {t['us']:9.1f} us [{t['q1_us']:.1f}, {t['q3_us']:.1f}] "
                  f"{t['tflops']:7.1f} TFLOP/s  {kn}", flush=True)  # fmt: skip
        path.write_text(json.dumps(res, indent=1))
        if dev == "cuda" and time.monotonic() < deadline - 8:
            rec["overlap"] = overlap(ops, carves, args, deadline)
            path.write_text(json.dumps(res, indent=1))
        del ops
        if dev == "cuda":
            torch.cuda.empty_cache()
    res["seconds"] = round(time.monotonic() - t_start, 1)
    path.write_text(json.dumps(res, indent=1))
    print(f"gemm_settings done in {res['seconds']} s -> {path}", flush=True)
    return 0


def overlap(ops: dict, carves: list[int], args, deadline: float) -> dict:
    """grad-input GEMM (default settings) on the main stream with a bf16 copy of 8192^2
    elements on a side stream, in one graph, vs the two serialised."""
    a, b, sa, sb = ops["grad_input"]
    src = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    side = torch.cuda.Stream()

    def gemm():
        return _mm(a, b, sa, sb, False, "cuda")

    def copy():
        dst.copy_(src)

    def both():
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            copy()
        y = gemm()
        torch.cuda.current_stream().wait_stream(side)
        return y

    def serial():
        copy()
        return gemm()

    fns = {"copy": _graph(copy, args.reps, "cuda")}
    for c in carves:
        fns[f"gemm/c{c}"] = _graph(gemm, args.reps, "cuda", c)
        fns[f"serial/c{c}"] = _graph(serial, args.reps, "cuda", c)
        fns[f"concurrent/c{c}"] = _graph(both, args.reps, "cuda", c)
    left = deadline - time.monotonic()
    tim = round_robin(fns, args.rounds, "cuda", time.monotonic() + 0.8 * left, args.reps)
    for c in carves:
        hidden = tim[f"serial/c{c}"]["us"] - tim[f"concurrent/c{c}"]["us"]
        tim[f"hidden_copy_us/c{c}"] = round(hidden, 2)
        gm, se, co = (tim[f"{w}/c{c}"]["us"] for w in ("gemm", "serial", "concurrent"))
        cp = tim["copy"]["us"]
        print(f"  overlap carve-out {c:>2}: gemm {gm:.1f} us, serial {se:.1f}, concurrent "
              f"{co:.1f} (copy alone {cp:.1f}; hidden {hidden:.1f} us)", flush=True)  # fmt: skip
    return tim


if __name__ == "__main__":
    raise SystemExit(main())
