"""Fewer launches per decode step: selection + step 2 fused chunk by chunk
(``hist_attention``) vs the two-stage kernels, and step 1 preparing the query itself.

Runs on CPU under ``TRITON_INTERPRET=1`` or on CUDA. The reference output is
``sparse_attention_reference`` over the indices of ``select_topk_hist`` (itself checked against
the selection reference in ``test_sparq_kernel_hist.py``): the same positions must be attended,
only the summation order differs.
"""

from __future__ import annotations

import os

import pytest
import torch

import sparq

triton = pytest.importorskip("triton")

INTERP = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cpu" if INTERP else ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(
    DEVICE is None, reason="needs CUDA or TRITON_INTERPRET=1 set before Python starts"
)

from sparq.kernels import select_topk_hist, sparse_attention_reference  # noqa: E402
from sparq.kernels._hist_attend import hist_attention  # noqa: E402

DT = torch.float16 if DEVICE == "cpu" else torch.bfloat16


def _case(sel, B, Hkv, G, S, dh, seed):
    logits, lens = sel.case(B, Hkv, G, S, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    q = torch.randn(B, Hkv * G, 1, dh, generator=g).to(DT)
    K = torch.randn(B, Hkv, S, dh, generator=g).to(DT)
    V = torch.randn(B, Hkv, S, dh, generator=g).to(DT)
    return logits, lens, q, K, V


def _run(sel, logits, lens, q, K, V, k, window, sinks, bucketed=True, **kw):
    """``hist_attention`` vs the fp32 reference over ``select_topk_hist``'s indices."""
    tmax, tsum = sel.stats(logits)
    dev = [x.to(DEVICE) for x in (q, K, V, logits, tmax, tsum, lens)]
    probe = {}
    y = hist_attention(*dev, k, window, sinks, _probe=probe, **kw).cpu().float()
    if kw.get("merge"):  # the in-kernel merge leaves its row counters at zero: same again
        assert torch.equal(y, hist_attention(*dev, k, window, sinks, **kw).cpu().float())
    if "ok" in probe:
        assert bool(torch.all(probe["ok"] == bucketed)), probe["ok"]
    skw = {
        x: v
        for x, v in kw.items()
        if x in ("chunk", "lean", "fast_cand", "sort_search", "no_lists", "samples")
    }
    idx, _ = select_topk_hist(*dev[3:], k, window, sinks, need_alpha=False, **skw)
    scale = q.shape[-1] ** -0.5
    y32 = sparse_attention_reference(q, K, V, idx.cpu(), lens, scale).float()
    ylo = sparse_attention_reference(q, K, V, idx.cpu(), lens, scale, compute_dtype=DT).float()
    # same rows, other summation order and p rounded to the input dtype before P @ V: at most
    # twice the error of a half-precision torch computation plus one half-precision ulp (2^-8
    # relative to the largest output; fp16 has 2^-11, bf16 2^-8)
    bound = 2 * (ylo - y32).abs().max().item() + 2**-8 * y32.abs().max().item()
    err = (y - y32).abs().max().item()
    assert torch.isfinite(y).all()
    assert err <= bound, (err, bound)
    return y


@pytest.mark.parametrize(
    ("B", "Hkv", "G", "S", "dh", "k", "window", "sinks", "kw"),
    [
        (2, 1, 4, 257, 64, 33, 5, 1, {"chunk": 32, "lean": True}),  # ragged, GQA group of 4
        # the lean layout: 3 programs per row walk 3 chunks each (the last one 3 of 9)
        (2, 1, 4, 257, 64, 33, 5, 1, {"chunk": 32, "lean": True, "splits": 3, "block": 16}),
        # every chunk resolves its row, the last one to finish merges it
        (2, 1, 2, 200, 32, 30, 2, 1, {"chunk": 32, "fused_resolve": True, "merge": True}),
        # ... and no threshold kernel: the candidate programs derive the thresholds on a kept
        # histogram that the merging program zeroes again (the second call checks that)
        pytest.param(2, 1, 4, 257, 64, 33, 5, 1, {"chunk": 32, "lean": True,
                                                  "fused_resolve": True, "merge": True,
                                                  "thr_in_cand": True, "sort_search": True},
                     marks=pytest.mark.slow),
        pytest.param(2, 2, 1, 300, 32, 19, 3, 2, {"chunk": 64, "fused_resolve": True},
                     marks=pytest.mark.slow),  # MHA, every chunk resolves its row
        pytest.param(1, 2, 3, 200, 64, 40, 0, 0, {"chunk": 64, "lean": True, "fast_cand": True,
                                                  "sort_search": True, "no_lists": True,
                                                  "block": 16}, marks=pytest.mark.slow),
    ],
)  # fmt: skip
def test_hist_attention_matches_two_stage(sel, B, Hkv, G, S, dh, k, window, sinks, kw):
    logits, lens, q, K, V = _case(sel, B, Hkv, G, S, dh, seed=S + k)
    _run(sel, logits, lens, q, K, V, k, window, sinks, **kw)


@pytest.mark.slow
def test_hist_attention_exact_fallback_row(sel):
    # the 48 largest logits in one chunk of 64 (capacity < 48): the chunk overflows, the row is
    # selected exactly by the chunk-0 program, which then attends all k winners itself
    logits, lens, q, K, V = _case(sel, 2, 1, 1, 512, 32, seed=7)
    logits[..., 64:112] += 50
    _run(sel, logits, lens, q, K, V, 32, 2, 1, bucketed=False, chunk=64, block=16)
    fb = {"bucketed": False, "chunk": 64}
    _run(sel, logits, lens, q, K, V, 32, 2, 1, **fb, merge=True, fused_resolve=True,
         thr_in_cand=True)  # fmt: skip
    # the lean layout: the merge kernel selects and attends the row exactly
    _run(sel, logits, lens, q, K, V, 32, 2, 1, **fb, splits=3)


def test_hist_attention_bad_input(sel):
    logits, lens, q, K, V = _case(sel, 1, 1, 2, 128, 32, seed=1)
    tmax, tsum = sel.stats(logits)
    args = [x.to(DEVICE) for x in (q, K, V, logits, tmax, tsum, lens)]
    with pytest.raises(ValueError, match="bucket lists"):
        hist_attention(*args, 8, fused_resolve=True, fast_cand=True, no_lists=True)
    with pytest.raises(ValueError, match="merge=True"):
        hist_attention(*args, 8, thr_in_cand=True)
    with pytest.raises(ValueError, match="splits needs"):
        hist_attention(*args, 8, splits=2, merge=True)
    with pytest.raises(ValueError, match="alpha"):
        hist_attention(*args, 8, need_alpha=True)


def test_dispatch_uses_the_tuned_attend_entry(monkeypatch):
    from sparq._reference import sparq_attention_reference
    from sparq.kernels import sparq_attention_triton

    g = torch.Generator().manual_seed(3)
    B, Hq, Hkv, S, dh = 2, 4, 2, 300, 32
    q = torch.randn(B, Hq, 1, dh, generator=g).to(DT)
    K = torch.randn(B, Hkv, S, dh, generator=g).to(DT)
    V = torch.randn(B, Hkv, S, dh, generator=g).to(DT)
    lens = torch.tensor([S, 250])
    kw = {"r": 8, "k": 40, "local_window": 4, "sink_tokens": 1, "seq_lens": lens}
    ref = sparq_attention_reference(q.float(), K.float(), V.float(), **kw).float()
    # the selection's warps and the attend kernel's warps are separate keys (no clash)
    base = {"selection": "hist", "selection_kw": {"chunk": 64, "lean": True, "num_warps": 2},
            "step1": {"rows": True, "tile": 64}}  # fmt: skip
    calls = []
    real = sparq.kernels._dispatch.hist_attention

    def spy(*a, **k):
        calls.append(k)
        return real(*a, **k)

    monkeypatch.setattr("sparq.kernels._dispatch.hist_attention", spy)
    out = {}
    fewest = {**base, "prep": "in_step1", "attend": {"splits": 2}}
    attend = {**base, "attend": {"block": 16, "attend_warps": 2}}
    for name, entry in (("two_stage", base), ("attend", attend), ("fewest", fewest)):
        monkeypatch.setattr("sparq.kernels._dispatch.tuned_entry", lambda key, e=entry: e)
        dev = [x.to(DEVICE) for x in (q, K, V)]
        out[name] = sparq_attention_triton(
            *dev, K_t=dev[1].transpose(-1, -2).contiguous(), dense_fallback=False,
            **{**kw, "seq_lens": lens.to(DEVICE)},
        ).cpu().float()  # fmt: skip
    assert len(calls) == 2
    assert calls[0]["block"] == 16
    assert calls[1]["splits"] == 2
    # same positions, other summation order: no more than twice the two-stage kernels' error
    # against the fp32 reference, plus one half-precision ulp of the largest output
    e2 = (out["two_stage"] - ref).abs().max().item()
    for name in ("attend", "fewest"):
        e1 = (out[name] - ref).abs().max().item()
        assert e1 <= 2 * e2 + 2**-8 * ref.abs().max().item(), (name, e1, e2)


@pytest.mark.parametrize(("G", "dh", "r"), [(1, 64, 8), (3, 32, 5)])
def test_step1_prepares_the_query_itself(G, dh, r):
    from sparq.kernels import approx_logits, prepare_query_fused

    g = torch.Generator().manual_seed(G)
    B, Hkv, S = 2, 2, 150
    q = torch.randn(B, Hkv * G, 1, dh, generator=g).to(DT).to(DEVICE)
    K_t = torch.randn(B, Hkv, dh, S, generator=g).to(DT).to(DEVICE)
    lens = torch.tensor([S, 97]).to(DEVICE)
    i1, qh = prepare_query_fused(q, Hkv, r, 0.3, sort=True)
    want = approx_logits(K_t, i1, qh, lens, rows=True, tile=64)
    got = approx_logits(K_t, None, None, lens, rows=True, tile=64, prep_q=(q, r, 0.3))
    for a, b in zip(want, got):  # the same components and products in the same order
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="rows=True"):
        approx_logits(K_t, None, None, lens, prep_q=(q, r, 0.3))
