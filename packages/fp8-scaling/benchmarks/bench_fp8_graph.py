"""Device time without host overhead: the measured work is replayed from a CUDA graph.

The harness brackets each call with CUDA events, so a Python-launched kernel of ~0.1 ms is
timed together with its launch cost on the host. Replaying a captured graph removes that cost
(only the graph launch, a few µs, remains) and leaves the GPU time of the kernels, which is what
a CUDA-graphed or compiled training step pays (the GPT training loop replays its forward and
backward from CUDA graphs). Both sides of every comparison are replayed the same way.

Cases (on the CPU they run without graphs, only to smoke-test this file):
* ``cast_jit_graph``: our Triton amax + JIT cast + transposed copy of an (n, n) bf16 tensor vs
  the same cast compiled by inductor from plain torch ops (:func:`cast_pow2_torch`).
* ``cast_delayed_graph``: the one-pass delayed cast (given scale, next amax in the same pass) vs
  inductor's compiled equivalent.
* ``linear_fp8_graph_vs_bf16``: Float8Linear forward + backward (eager kernels: Triton casts,
  ``_scaled_mm``) vs bf16 ``nn.Linear`` forward + backward, each captured in a graph.
* ``linear_fp8_graph_vs_torchao``: the same vs torchao tensorwise (eager, captured).
"""

from __future__ import annotations

import os

import torch
from monobench import Measure, case
from torch import nn

from fp8_scaling import Float8Linear, JustInTimeScaling
from fp8_scaling._cast_ops import (
    amax_impl,
    cast_transpose_impl,
    cast_transpose_ref,
    delayed_cast_impl,
    delayed_cast_ref,
)
from fp8_scaling._formats import get_format
from fp8_scaling._torch_cast import cast_pow2_torch, cast_scaled_torch

HBM = 4.3e12  # measured device-to-device copy bandwidth of the H200 (B/s)
PEAK_BF16 = 9.9e14
_SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (16384, 8192, 28672)]
if os.environ.get("FP8_GRAPH_SHAPES"):  # e.g. "4096x4096x4096,8192x8192x8192"
    _SHAPES = [
        tuple(int(v) for v in s.split("x")) for s in os.environ["FP8_GRAPH_SHAPES"].split(",")
    ]
_PARAMS = [{"m": m, "k": k, "n": n} for m, k, n in _SHAPES]
_QUICK = [{"m": 64, "k": 64, "n": 128}]


def graphed(fn, device: str = "cuda", warmup: int = 3):
    """Capture ``fn()`` (after ``warmup`` eager calls on a side stream) into a CUDA graph.

    Returns a zero-argument callable replaying it (it keeps ``fn``, and so the tensors the graph
    reads, alive); tensors created inside ``fn`` live in the graph's memory pool and are
    overwritten by each replay. On the CPU (smoke tests of the script) ``fn`` itself is returned.
    """
    if device != "cuda":
        return fn
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()

    def replay():
        g.replay()

    replay.keep = (fn, g)
    return replay


def _compile(fn, device: str):
    return torch.compile(fn) if device == "cuda" else fn


def _x(n: int, device: str) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(0)
    return torch.randn(n, n, generator=g).mul_(3.0).to(device, torch.bfloat16)


def _same_bytes(got, want) -> bool:
    return all(
        torch.equal(
            a.view(torch.uint8) if a.dtype != torch.float32 else a,
            b.view(torch.uint8) if b.dtype != torch.float32 else b,
        )
        for a, b in zip(got, want)
    )


@case("cast_jit_graph", params=[{"n": 8192}], quick_params=[{"n": 256}], devices=("cpu", "cuda"))
def bench_cast_jit_graph(n: int, device: str) -> Measure:
    """Triton amax + JIT cast + transposed copy vs inductor, GPU time (CUDA-graph replay)."""
    x = _x(n, device)
    fmt = get_format("e4m3")

    def ours():
        return cast_transpose_impl(x, amax_impl(x), "e4m3", 0, True)

    comp = _compile(lambda x: cast_pow2_torch(x, fmt, 0, True), device)

    def check():
        q, qt, inv = ours()
        rq, rqt, rinv = cast_transpose_ref(x, amax_impl(x), "e4m3", 0, True)
        cq, cqt, _, _ = comp(x)
        if not (_same_bytes((q, qt, inv), (rq, rqt, rinv)) and _same_bytes((cq, cqt), (rq, rqt))):
            raise AssertionError("a JIT cast differs from the torch reference")

    check()
    return Measure(
        candidate=graphed(ours, device),
        baseline=graphed(lambda: comp(x), device),
        candidate_label="triton amax+cast+T (graph)",
        baseline_label="inductor (graph)",
        bytes=4.0 * n * n,  # the minimum: read bf16 once, write two FP8 copies
        peak_bytes_per_s=HBM,
        check=check,
        repeats=50,
        extra={"min_bytes_with_amax_pass": 6.0 * n * n},
    )


@case(
    "cast_delayed_graph", params=[{"n": 8192}], quick_params=[{"n": 256}], devices=("cpu", "cuda")
)
def bench_cast_delayed_graph(n: int, device: str) -> Measure:
    """One-pass delayed cast (scale given, next amax fused) vs inductor, GPU time (graphs)."""
    x = _x(n, device)
    s = torch.tensor(16.0, device=device)
    fmt = get_format("e4m3")

    def ours():
        return delayed_cast_impl(x, s, "e4m3", True)

    comp = _compile(lambda x, s: cast_scaled_torch(x, s, fmt, True), device)

    def check():
        want = delayed_cast_ref(x, s, "e4m3", True)
        if not (_same_bytes(ours(), want) and _same_bytes(comp(x, s), want)):
            raise AssertionError("a delayed cast differs from the torch reference")

    check()
    return Measure(
        candidate=graphed(ours, device),
        baseline=graphed(lambda: comp(x, s), device),
        candidate_label="triton 1-pass (graph)",
        baseline_label="inductor (graph)",
        bytes=4.0 * n * n,
        peak_bytes_per_s=HBM,
        check=check,
        repeats=50,
    )


_SPEC = [
    {"m": 8192, "n": 8192, "guess": "holds", "cfg": "tuned"},
    {"m": 8192, "n": 8192, "guess": "wrong", "cfg": "tuned"},
    {"m": 16384, "n": 28672, "guess": "holds", "cfg": "tuned"},
    {"m": 16384, "n": 28672, "guess": "wrong", "cfg": "tuned"},
    {"m": 28672, "n": 8192, "guess": "holds", "cfg": "tuned"},
]


def _spec_cfg(name: str):
    """``"tuned"`` (the table's JIT entry), ``"pW"`` (that with W programs per SM in the first
    pass), or ``"BMxBNwW"`` (tile rows, columns, warps; one program per tile)."""
    from fp8_scaling._fastcast import CastConfig

    if name == "tuned":
        return None, None
    if name.startswith("p"):
        return None, int(name[1:])
    tile, warps = name.split("w")
    bm, bn = (int(v) for v in tile.split("x"))
    return CastConfig(bm=bm, bn=bn, warps=int(warps)), None


@case(
    "cast_spec_graph", params=_SPEC,
    quick_params=[{"m": 96, "n": 160, "guess": "holds", "cfg": "32x32w4"}],
    devices=("cpu", "cuda"),
)  # fmt: skip
def bench_cast_spec_graph(m: int, n: int, guess: str, cfg: str, device: str) -> Measure:
    """One-pass JIT cast (previous scale reused, amax measured in the same pass, recast only if
    the scale changed; :mod:`fp8_scaling._speccast`) vs the two-pass JIT cast (our amax kernel,
    then our cast kernel), same bytes, GPU time (CUDA-graph replay). ``guess="wrong"``: the
    stored scale is off by a factor of 2 at every call, so the recast always runs. ``cfg``: the
    tile configuration of both passes (see :func:`_spec_cfg`)."""
    from fp8_scaling import _speccast
    from fp8_scaling._speccast import spec_cast_impl

    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(m, n, generator=g).mul_(3.0).to(device, torch.bfloat16)
    right = cast_transpose_ref(x, amax_impl(x), "e4m3", 0, True)[2].reciprocal()
    state = right.clone() * (1.0 if guess == "holds" else 2.0)

    def ours():
        if guess == "wrong":
            state.copy_(right * 2.0)  # a stale scale at every call
        _speccast.SPEC_CONFIG, _speccast.SPEC_WAVES = _spec_cfg(cfg)  # read at launch
        try:
            out = spec_cast_impl(x, state, "e4m3", 0, True)
        finally:
            _speccast.SPEC_CONFIG = _speccast.SPEC_WAVES = None
        state.copy_(out[4])  # as the layer does: the new scale is the next guess
        return out

    def base():
        return cast_transpose_impl(x, amax_impl(x), "e4m3", 0, True)

    def check():
        want = cast_transpose_ref(x, amax_impl(x), "e4m3", 0, True)
        got = ours()
        if not _same_bytes(got[:3], want) or not _same_bytes(base(), want):
            raise AssertionError(f"one-pass JIT cast ({guess}) differs from the torch reference")

    check()
    return Measure(
        candidate=graphed(ours, device),
        baseline=graphed(base, device),
        candidate_label=f"1-pass JIT, guess {guess}, {cfg} (graph)",
        baseline_label="amax + JIT cast (graph)",
        bytes=4.0 * m * n,  # read bf16 once, write two FP8 copies
        peak_bytes_per_s=HBM,
        check=check,
        repeats=50,
    )


def _sqnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float(20 * torch.log10(b.norm() / (a - b).norm().clamp_min(1e-30)))


def _layer_step(kind: str, m: int, k: int, n: int, device: str):
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(m, k, generator=g).to(device, torch.bfloat16).requires_grad_(True)
    w = (torch.randn(n, k, generator=g) / k**0.5).to(device, torch.bfloat16)
    dy = torch.randn(m, n, generator=g).to(device, torch.bfloat16)
    lin = nn.Linear(k, n, bias=False, device=device, dtype=torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(w)
    model: nn.Module = nn.Sequential(lin)
    if kind == "ours":
        model = nn.Sequential(Float8Linear.from_linear(lin, JustInTimeScaling()))
    elif kind == "torchao":
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training

        cfg = Float8LinearConfig.from_recipe_name("tensorwise")
        model = convert_to_float8_training(model, config=cfg)

    def step():  # gradients allocated anew (inside the graph's pool when captured)
        x.grad = model[0].weight.grad = None
        model(x).backward(dy)

    def sqnr():
        x.grad = model[0].weight.grad = None
        y = model(x)
        y.backward(dy)
        xr = x.detach().float().requires_grad_(True)
        wr = w.float().requires_grad_(True)
        yr = xr @ wr.t()
        yr.backward(dy.float())
        return [_sqnr(y, yr), _sqnr(x.grad, xr.grad), _sqnr(model[0].weight.grad, wr.grad)]

    return step, sqnr


def _graph_measure(cand: str, base: str, m: int, k: int, n: int, device: str) -> Measure:
    c_step, c_sqnr = _layer_step(cand, m, k, n, device)
    b_step, b_sqnr = _layer_step(base, m, k, n, device)
    extra = {"candidate_sqnr_db": c_sqnr(), "baseline_sqnr_db": b_sqnr()}
    # FP8 E4M3/E5M2 GEMMs give ~28 dB (output) and ~24 dB (grads) on random normal data; below
    # 20 dB something is wrong (a wrong scale or layout gives < 0 dB)
    for side in ("candidate_sqnr_db", "baseline_sqnr_db"):
        if min(extra[side]) < 20:
            raise AssertionError(f"{side} {extra[side]} below 20 dB at {(m, k, n)}")
    return Measure(
        candidate=graphed(c_step, device),
        baseline=graphed(b_step, device),
        candidate_label=f"{cand} (graph)",
        baseline_label=f"{base} (graph)",
        flops=3 * 2.0 * m * k * n,
        peak_flops=2 * PEAK_BF16,
        extra=extra,
    )


@case("linear_fp8_graph_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cpu", "cuda"))
def bench_linear_graph(m: int, k: int, n: int, device: str) -> Measure:
    """Float8Linear fwd+bwd vs bf16 nn.Linear fwd+bwd, GPU time (CUDA-graph replay)."""
    return _graph_measure("ours", "bf16", m, k, n, device)


@case("linear_fp8_graph_vs_torchao", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_linear_graph_tao(m: int, k: int, n: int, device: str) -> Measure:
    """Float8Linear fwd+bwd vs torchao tensorwise fwd+bwd, GPU time (CUDA-graph replay)."""
    return _graph_measure("ours", "torchao", m, k, n, device)
