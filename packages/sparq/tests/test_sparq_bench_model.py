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
def llama():
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
