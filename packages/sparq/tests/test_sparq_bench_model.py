"""The end-to-end benchmark model's fused per-layer kernels reproduce its plain PyTorch step.

Runs on CPU under ``TRITON_INTERPRET=1`` (set before Python starts) or on CUDA.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

triton = pytest.importorskip("triton")

INTERP = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cpu" if INTERP else ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(
    DEVICE is None, reason="needs CUDA or TRITON_INTERPRET=1 set before Python starts"
)

MODEL = Path(__file__).parents[1] / "benchmarks" / "_llama.py"


@pytest.fixture
def llama(monkeypatch):
    monkeypatch.syspath_prepend(str(MODEL.parent))  # _llama imports its sibling _skinny
    spec = importlib.util.spec_from_file_location("sparq_bench_llama", MODEL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve the module by name
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def test_fused_step_matches_plain_step(llama):
    dtype = torch.float16 if DEVICE == "cpu" else torch.bfloat16
    assert llama.fused_ops_agree(DEVICE, dtype) is None


def test_fused_kernels_against_torch(llama):
    shape = llama.LlamaShape(hidden=64, heads=4, kv_heads=2, layers=1, ffn=96, vocab=32)
    m = llama.TinyLlama(shape, 3, 16, DEVICE, torch.float16, fused=True)
    x = torch.randn(3, 64, device=DEVICE).half()
    # one fp32 reduction per row in another order than torch: 2 fp16 ulps (2^-9 relative)
    ref = torch.nn.functional.rms_norm(x.float(), (64,), eps=torch.finfo(x.dtype).eps)
    assert torch.allclose(m._rms(x).float(), ref, rtol=2**-9, atol=1e-3)
    gu = torch.randn(3, 2 * 96, device=DEVICE).half()
    act = torch.empty(3, 96, device=DEVICE, dtype=torch.float16)
    llama._swiglu_kernel[(3, 1)](gu, act, 96, BLOCK=128)
    g, u = gu.float().chunk(2, dim=-1)
    ref = torch.nn.functional.silu(g) * u
    # two fp16 roundings (silu, product) as in the plain step: 2^-9 relative plus a tiny floor
    assert torch.allclose(act.float(), ref, rtol=2**-9, atol=1e-3)


def test_add_rms_step_matches_plain_step(llama):
    # residual adds fused into the following norm: same token and cache writes as the plain step
    dtype = torch.float16 if DEVICE == "cpu" else torch.bfloat16
    assert llama.fused_ops_agree(DEVICE, dtype, add_rms=True) is None


def test_add_rms_kernel_against_torch(llama):
    shape = llama.LlamaShape(hidden=64, heads=4, kv_heads=2, layers=1, ffn=96, vocab=32)
    m = llama.TinyLlama(shape, 3, 16, DEVICE, torch.float16, fused=True, add_rms=True)
    x = torch.randn(3, 64, device=DEVICE).half()
    y = torch.randn(3, 64, device=DEVICE).half()
    want_x = x + y  # torch's fp16 add: fp32 sum rounded once, as the kernel
    h = m._add_rms(x, y)
    assert torch.equal(x, want_x)
    ref = torch.nn.functional.rms_norm(want_x.float(), (64,), eps=torch.finfo(x.dtype).eps)
    # as the plain norm above: one fp32 reduction in another order, 2 fp16 ulps
    assert torch.allclose(h.float(), ref, rtol=2**-9, atol=1e-3)


def test_weights_t_stores_the_same_weights_transposed(llama):
    shape = llama.LlamaShape(hidden=64, heads=4, kv_heads=2, layers=1, ffn=96, vocab=32)
    a = llama.TinyLlama(shape, 2, 16, DEVICE, torch.float16)
    b = llama.TinyLlama(shape, 2, 16, DEVICE, torch.float16, weights_t=True)
    for name, w in a.layers[0].items():
        wt = b.layers[0][name]
        assert torch.equal(w, wt)  # same values and shape, (in, out) contiguous underneath
        assert wt.T.is_contiguous()
        assert not wt.is_contiguous()
    assert torch.equal(a.lm_head, b.lm_head)
    assert b.lm_head.T.is_contiguous()


@pytest.fixture
def skinny(llama):
    import _skinny

    return _skinny


@pytest.mark.parametrize(("M", "N", "K"), [(1, 16, 16), (3, 50, 70), (16, 96, 300), (5, 129, 257)])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("layout", ["nk", "kn"])
def test_skinny_mm_against_fp32_reference(skinny, M, N, K, residual, layout):
    g = torch.Generator().manual_seed(M * N + K)
    x = torch.randn(M, K, generator=g).half().to(DEVICE)
    w = (torch.randn(N, K, generator=g) / K**0.5).half().to(DEVICE)
    if layout == "kn":  # the weights stored transposed underneath, as TinyLlama(weights_t=True)
        w = w.T.contiguous().T
    res = torch.randn(M, N, generator=g).half().to(DEVICE) if residual else None
    ref = x.double() @ w.double().T + (res.double() if residual else 0)
    for cfg in [(16, 32, 4, 2), (32, 64, 4, 2)]:
        y = skinny.skinny_mm(x, w, res, cfg)
        assert y.shape == (M, N)
        assert y.dtype == x.dtype
        # one fp16 rounding (half an ulp: 2^-11 relative) of an fp32 sum whose error is at most
        # K * 2^-24 of sum |x w| (fp16 products are exact in fp32), plus the subnormal floor;
        # any indexing or masking error is orders of magnitude larger
        bound = 2**-11 * ref.abs() + K * 2**-24 * (x.double().abs() @ w.double().abs().T) + 1e-6
        assert ((y.double() - ref).abs() <= bound).all()
        want = skinny.skinny_mm_reference(x, w, res)
        # the reference rounds the same fp32 sum once: at most one ulp apart (summation order)
        assert torch.allclose(y.float(), want.float(), rtol=2**-9, atol=1e-3)


@pytest.mark.parametrize(("M", "F", "K"), [(3, 25, 70), (16, 48, 300), (5, 129, 257)])
@pytest.mark.parametrize("layout", ["nk", "kn"])
def test_skinny_mm_swiglu_epilogue_against_reference(skinny, M, F, K, layout):
    g = torch.Generator().manual_seed(M + F + K)
    x = torch.randn(M, K, generator=g).half().to(DEVICE)
    w = (torch.randn(2 * F, K, generator=g) * 2 / K**0.5).half().to(DEVICE)  # [gate; up]
    if layout == "kn":
        w = w.T.contiguous().T
    want = skinny.skinny_mm_reference(x, w, mode="swiglu").double()
    assert want.shape == (M, F)
    # the fallback where cuBLAS is chosen: a BLAS product, then the same SwiGLU in torch
    fb = skinny.SkinnyMM({})(x, w, mode="swiglu").double()
    assert torch.allclose(fb, want, rtol=2**-8, atol=2e-3)
    for cfg in [(16, 32, 4, 2), (32, 64, 4, 2)]:
        y = skinny.skinny_mm(x, w, None, cfg, "swiglu").double()
        # the same roundings as the reference (g, u, silu(g), product to fp16) on fp32 sums
        # taken in another order: an input one ulp apart moves the output by at most ~2 ulps
        # (2^-9 relative) plus an absolute floor for values near zero; a gate/up column mix-up
        # is O(1)
        assert ((y - want).abs() <= 2**-8 * want.abs() + 2e-3).all()


def test_skinny_mm_rejects_bad_shapes(skinny):
    x = torch.zeros(2, 8, dtype=torch.float16, device=DEVICE)
    with pytest.raises(ValueError, match="inner dimensions"):
        skinny.skinny_mm(x, torch.zeros(4, 6, dtype=torch.float16, device=DEVICE))
    with pytest.raises(ValueError, match=r"\[gate; up\]"):
        skinny.skinny_mm(x, torch.zeros(5, 8, dtype=torch.float16, device=DEVICE), mode="swiglu")
    with pytest.raises(ValueError, match="mode must be"):
        skinny.skinny_mm(x, torch.zeros(4, 8, dtype=torch.float16, device=DEVICE), mode="gelu")
    with pytest.raises(ValueError, match="at most 64 rows"):
        skinny.skinny_mm(torch.zeros(65, 8, dtype=torch.float16, device=DEVICE),
                         torch.zeros(4, 8, dtype=torch.float16, device=DEVICE))  # fmt: skip


def test_triton_gemm_model_step_matches_cublas_step(llama):
    # the same decode step with SwiGLU and the residual adds inside the skinny kernel: same
    # tokens, and cache writes equal to rounding (the kernel sums in another order than BLAS)
    shape = llama.LlamaShape(hidden=64, heads=4, kv_heads=2, layers=2, ffn=96, vocab=48)
    dtype = torch.float16 if DEVICE == "cpu" else torch.bfloat16
    models = [llama.TinyLlama(shape, 3, 24, DEVICE, dtype, fused=True, gemm=gm)
              for gm in ("cublas", "triton")]  # fmt: skip
    assert models[1]._mm.choice  # every projection has a (tuned or fixed) entry
    for m in models:
        m.prefill_random(10)
        m.tok.copy_(torch.tensor([1, 5, 9], device=DEVICE))

    def attn(q, K, V, K_t, vm, lens):
        from sparq.kernels import dense_decode

        return dense_decode(q, K, V, lens, q.shape[-1] ** -0.5)

    for _ in range(3):
        toks = [m.step(attn).clone() for m in models]
        assert torch.equal(toks[0], toks[1])
    for a, b in zip(models[0].K, models[1].K):
        new = (slice(None), slice(None), slice(10, 13))
        err = (a[new].float() - b[new].float()).norm() / a[new].float().norm()
        assert err <= 2e-2  # as fused_ops_agree: a few ulps spread by the projection
        assert torch.equal(a[:, :, :10], b[:, :, :10])


def test_gemm_option_is_checked(llama):
    shape = llama.LlamaShape(hidden=64, heads=4, kv_heads=2, layers=1, ffn=96, vocab=32)
    with pytest.raises(ValueError, match="gemm must be"):
        llama.TinyLlama(shape, 2, 16, DEVICE, torch.float16, fused=True, gemm="cutlass")
    with pytest.raises(ValueError, match="fused=True, add_rms=False"):  # adds fused elsewhere
        llama.TinyLlama(shape, 2, 16, DEVICE, torch.float16, fused=True, add_rms=True,
                        gemm="triton")  # fmt: skip
