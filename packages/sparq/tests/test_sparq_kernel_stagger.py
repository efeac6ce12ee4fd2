"""Staggered calls (``sparq_attention_triton(streams=n)``): the rows split into parts give the
same output bit for bit as one call (every row runs the same kernels); on CUDA the parts run on
their own streams, also inside a CUDA-graph capture."""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("triton")

INTERP = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cpu" if INTERP else ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(
    DEVICE is None, reason="needs CUDA or TRITON_INTERPRET=1 set before Python starts"
)

from sparq.kernels import sparq_attention_triton, sparse_attention  # noqa: E402


def _case(B, Hq, Hkv, S, dh, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, 1, dh, generator=g).to(DEVICE, torch.bfloat16)
    K = torch.randn(B, Hkv, S, dh, generator=g).to(DEVICE, torch.bfloat16)
    V = torch.randn(B, Hkv, S, dh, generator=g).to(DEVICE, torch.bfloat16)
    lens = torch.tensor([S - 3 * i for i in range(B)], dtype=torch.int64, device=DEVICE)
    vm = V.float().mean(2)
    return q, K, V, K.transpose(-1, -2).contiguous(), vm, lens


@pytest.mark.parametrize(
    ("B", "Hq", "Hkv", "streams", "realloc"),
    [(3, 4, 2, 2, False), (1, 4, 4, 3, True), (2, 2, 2, 5, False)],
)
def test_staggered_equals_one_call(B, Hq, Hkv, streams, realloc):
    """Batch split (B > 1), KV-head split (B == 1, reallocation on) and more parts than rows."""
    q, K, V, K_t, vm, lens = _case(B, Hq, Hkv, 70, 32, seed=B)
    kw = dict(r=5, k=17, local_window=3, sink_tokens=1, v_mean=vm, K_t=K_t, seq_lens=lens,
              reallocation=realloc, dense_fallback=False)  # fmt: skip
    one = sparq_attention_triton(q, K, V, streams=1, **kw)
    parts = sparq_attention_triton(q, K, V, streams=streams, **kw)
    assert parts.shape == one.shape == q.shape
    assert torch.equal(parts, one)


def test_staggered_exact_path_and_env(monkeypatch):
    """``k >= S`` (exact attention, no step 1) through ``SPARQ_STREAMS``."""
    q, K, V, K_t, _, lens = _case(2, 2, 1, 24, 16, seed=7)
    kw = dict(r=16, k=24, K_t=K_t, seq_lens=lens, dense_fallback=False)
    one = sparq_attention_triton(q, K, V, **kw)
    monkeypatch.setenv("SPARQ_STREAMS", "2")
    assert torch.equal(sparq_attention_triton(q, K, V, **kw), one)


def test_streams_and_out_errors():
    q, K, V, K_t, _, lens = _case(1, 2, 1, 20, 16)
    with pytest.raises(ValueError, match="streams"):
        sparq_attention_triton(q, K, V, r=4, k=8, K_t=K_t, streams=0, dense_fallback=False)
    idx = torch.arange(8, dtype=torch.int32, device=DEVICE).expand(1, 1, 8).contiguous()
    bad = torch.empty(1, 2, 1, 8, dtype=q.dtype, device=DEVICE)
    with pytest.raises(ValueError, match="out must be"):
        sparse_attention(q, K, V, idx, lens, 0.25, out=bad)
    out = torch.empty_like(q)
    y = sparse_attention(q, K, V, idx, lens, 0.25, out=out)
    assert y.data_ptr() == out.data_ptr()
    assert torch.equal(y, sparse_attention(q, K, V, idx, lens, 0.25))
