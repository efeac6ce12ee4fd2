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


def test_fallback_verdict_order_and_memory(monkeypatch):
    """The dense fallback's decision: the tuned verdict, else one measurement per size class
    (remembered), else the bandwidth model (not remembered, so a later eager call measures)."""
    kernels = pytest.importorskip("sparq.kernels")
    from sparq.kernels import _dispatch

    monkeypatch.setattr(_dispatch, "_VERDICT", {})
    monkeypatch.delenv("SPARQ_FALLBACK", raising=False)
    calls = {"measure": 0, "model": 0}

    def measure(v):
        def f():
            calls["measure"] += 1
            return v

        return f

    def model():
        calls["model"] += 1
        return True

    verdict = kernels.fallback_verdict
    assert verdict("a", model=model, tuned=False, measure=measure(True)) is False  # tuned wins
    assert calls == {"measure": 0, "model": 0}
    assert verdict("a", model=model, measure=measure(False)) is False  # measured, remembered
    assert verdict("a", model=model, measure=measure(True)) is False  # not measured again
    assert calls == {"measure": 1, "model": 0}
    # cannot measure now (CPU, graph capture): the model decides and nothing is remembered
    assert verdict("b", model=model, measure=False) is True
    assert verdict("b", model=model, measure=measure(None)) is True
    assert "b" not in _dispatch._VERDICT
    assert calls["model"] == 2

    def broken():
        raise RuntimeError("capture failed")

    assert verdict("c", model=model, measure=broken) is True  # a failure falls back to it
    monkeypatch.setenv("SPARQ_FALLBACK", "model")
    assert verdict("d", model=model, measure=measure(False)) is True  # measurement switched off
    assert calls["measure"] == 2
    assert "d" not in _dispatch._VERDICT
