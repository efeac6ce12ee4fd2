"""FP8 cast kernels (amax + cast + transposed copy; one-pass delayed cast) and the GEMM ceiling."""

from __future__ import annotations

import torch
from monobench import Measure, case

from fp8_scaling._cast_ops import (
    amax_op,
    cast_transpose_op,
    cast_transpose_ref,
    delayed_cast_op,
    delayed_cast_ref,
)
from fp8_scaling._formats import get_format
from fp8_scaling._torch_cast import cast_pow2_torch

HBM = 4.3e12  # measured device-to-device copy bandwidth of the H200 (B/s)


def _x(n: int, device: str) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(0)
    return torch.randn(n, n, generator=g).mul_(3.0).to(device, torch.bfloat16)


def _compiled_ref(x: torch.Tensor):
    def ref(x):
        a = x.abs().amax().float()
        b = torch.clamp(torch.floor(torch.log2(448.0 / a)), -31, 31)
        q = (x.float() * torch.exp2(b)).clamp(-448, 448).to(torch.float8_e4m3fn)
        return q, q.t().contiguous(), torch.exp2(-b)

    return torch.compile(ref) if x.is_cuda else ref


@case("cast_transpose_jit", params=[{"n": 8192}], quick_params=[{"n": 256}])
def bench_cast(n: int, device: str) -> Measure:
    """amax + E4M3 cast + transposed copy of an (n, n) bf16 tensor vs compiled torch."""
    x = _x(n, device)
    ours = lambda: cast_transpose_op(x, amax_op(x), "e4m3", 0, True)  # noqa: E731
    base = _compiled_ref(x)

    def check():
        q, qt, inv = ours()
        rq, rqt, rinv = cast_transpose_ref(x, amax_op(x), "e4m3", 0, True)
        if not (
            torch.equal(q.view(torch.uint8), rq.view(torch.uint8))
            and torch.equal(qt.view(torch.uint8), rqt.view(torch.uint8))
            and torch.equal(inv, rinv)
        ):
            raise AssertionError("cast_transpose differs from its torch reference")

    # bytes that must move: read bf16 once, write two FP8 copies
    return Measure(
        candidate=ours,
        baseline=lambda: base(x),
        candidate_label="triton amax+cast+T",
        baseline_label="torch.compile",
        bytes=4.0 * n * n,
        peak_bytes_per_s=HBM,
        check=check,
        repeats=50,
    )


@case("cast_transpose_inductor", params=[{"n": 8192}], quick_params=[{"n": 256}])
def bench_cast_inductor(n: int, device: str) -> Measure:
    """The compiled path's cast (plain torch ops fused by inductor) vs the Triton custom ops."""
    x = _x(n, device)
    fmt = get_format("e4m3")

    def fn(x):
        return cast_pow2_torch(x, fmt, 0, True)

    cand = torch.compile(fn) if x.is_cuda else fn
    triton_ops = lambda: cast_transpose_op(x, amax_op(x), "e4m3", 0, True)  # noqa: E731

    def check():
        q, qt, inv, _ = cand(x)
        rq, rqt, rinv = cast_transpose_ref(x, amax_op(x), "e4m3", 0, True)
        if not (
            torch.equal(q.view(torch.uint8), rq.view(torch.uint8))
            and torch.equal(qt.view(torch.uint8), rqt.view(torch.uint8))
            and torch.equal(inv, rinv)
        ):
            raise AssertionError("compiled cast_pow2_torch differs from its reference")

    return Measure(
        candidate=lambda: cand(x),
        baseline=triton_ops,
        candidate_label="inductor amax+cast+T",
        baseline_label="triton ops",
        bytes=4.0 * n * n,
        peak_bytes_per_s=HBM,
        check=check,
        repeats=50,
    )


@case("delayed_cast", params=[{"n": 8192}], quick_params=[{"n": 256}])
def bench_delayed(n: int, device: str) -> Measure:
    """One-pass delayed cast (given scale, next amax) + transposed copy vs compiled torch."""
    x = _x(n, device)
    s = torch.tensor(16.0, device=device)
    ours = lambda: delayed_cast_op(x, s, "e4m3", True)  # noqa: E731

    def ref(x, s):
        q = (x.float() * s).clamp(-448, 448).to(torch.float8_e4m3fn)
        return q, q.t().contiguous(), x.abs().amax().float()

    base = torch.compile(ref) if x.is_cuda else ref

    def check():
        got, want = ours(), delayed_cast_ref(x, s, "e4m3", True)
        for a, b in zip(got, want):
            if not torch.equal(
                a.view(torch.uint8) if a.dtype != torch.float32 else a,
                b.view(torch.uint8) if b.dtype != torch.float32 else b,
            ):
                raise AssertionError("delayed_cast differs from its torch reference")

    return Measure(
        candidate=ours,
        baseline=lambda: base(x, s),
        candidate_label="triton 1-pass",
        baseline_label="torch.compile",
        bytes=4.0 * n * n,
        peak_bytes_per_s=HBM,
        check=check,
        repeats=50,
    )


@case("scaled_mm_vs_bf16_mm", params=[{"n": 8192}], quick_params=[{"n": 256}], devices=("cuda",))
def bench_gemm(n: int, device: str) -> Measure:
    """Environment sanity: one E4M3 _scaled_mm (fast accum) vs one bf16 mm at n^3."""
    a = torch.randn(n, n, device=device).to(torch.bfloat16)
    b = torch.randn(n, n, device=device).to(torch.bfloat16)
    a8, b8 = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn).t().contiguous().t()
    one = torch.ones((), device=device)

    def ours():
        return torch._scaled_mm(
            a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16, use_fast_accum=True
        )

    return Measure(
        candidate=ours,
        baseline=lambda: a @ b,
        candidate_label="_scaled_mm e4m3",
        baseline_label="bf16 mm",
        flops=2.0 * n**3,
        peak_flops=1.98e15,
    )
