"""The dispatch hook to the Triton kernels: guarded, lazy, and exactly the contract's call."""

import sys

import pytest
import torch

import sparq
from sparq import _api


def _args():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 1, 16, generator=g)
    K = torch.randn(1, 1, 12, 16, generator=g)
    return q, K, K.clone()


def test_kernel_called_with_contract_arguments(monkeypatch):
    kernels = pytest.importorskip("sparq.kernels")
    seen = {}

    def fake(q, K, V, **kw):
        seen.update(kw)
        return torch.full_like(q, 7.0)

    monkeypatch.setattr(kernels, "supports", lambda *a, **kw: True)
    monkeypatch.setattr(kernels, "sparq_attention_triton", fake)
    q, K, V = _args()
    out = _api._try_kernel(
        q, K, V, r=4, k=3, local_window=1, sink_tokens=0, v_mean=None, K_t=None,
        seq_lens=None, scale=0.25, realloc=False,
    )  # fmt: skip
    assert torch.equal(out, torch.full_like(q, 7.0))
    assert set(seen) == {
        "r", "k", "local_window", "sink_tokens", "v_mean", "K_t", "seq_lens", "scale",
        "reallocation",
    }  # fmt: skip
    # on CPU the public function never dispatches to the kernel
    y = sparq.sparq_attention(q, K, V, r=4, k=3)
    assert not torch.equal(y, torch.full_like(q, 7.0))


def test_unsupported_or_missing_kernels_fall_back(monkeypatch):
    q, K, V = _args()
    kw = {"r": 4, "k": 3, "local_window": 0, "sink_tokens": 0, "v_mean": None, "K_t": None,
          "seq_lens": None, "scale": 0.25, "realloc": False}  # fmt: skip
    monkeypatch.setitem(sys.modules, "sparq.kernels", None)  # import raises ImportError
    monkeypatch.delattr(sparq, "kernels", raising=False)
    assert _api._try_kernel(q, K, V, **kw) is None
