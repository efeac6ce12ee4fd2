"""The pre-filtered step 1 + selection (no logits scratch) vs step 1 + the histogram selection.

Runs on CPU under ``TRITON_INTERPRET=1`` or on CUDA. The pre-filtered pipeline must give exactly
the winners (and, within fp32 summation order, the masses) of ``approx_logits(rows=True)`` +
``select_topk_hist``, whether a row resolves from its candidates or takes the exact fallback,
and the winners must pass the reference's key checks (exactly k, sorted, ties at the lowest
positions, forced positions kept).
"""

from __future__ import annotations

import math
import os

import pytest
import torch

triton = pytest.importorskip("triton")

INTERP = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cpu" if INTERP else ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(
    DEVICE is None, reason="needs CUDA or TRITON_INTERPRET=1 set before Python starts"
)

from sparq.kernels import (  # noqa: E402
    approx_logits,
    approx_logits_reference,
    prepare_query_fused,
    select_topk_hist,
    select_topk_reference,
)
from sparq.kernels._prefilter import prefilter_supported, select_topk_prefiltered  # noqa: E402


def _case(B, Hkv, G, S, r, seed, ragged=True):
    g = torch.Generator().manual_seed(seed)
    dh = 32
    q = torch.randn(B, Hkv * G, 1, dh, generator=g)
    q = q * (1 + 4 * (torch.rand(B, Hkv * G, 1, dh, generator=g) > 0.9))
    K = torch.randn(B, Hkv, S, dh, generator=g).to(torch.bfloat16)
    lens = torch.full((B,), S, dtype=torch.int64)
    if ragged and B > 1:
        lens[1:] = torch.randint(S // 2, S + 1, (B - 1,), generator=g)
    q, K, lens = q.to(torch.bfloat16).to(DEVICE), K.to(DEVICE), lens.to(DEVICE)
    K_t = K.transpose(-1, -2).contiguous()
    i1, q_hat = prepare_query_fused(q, Hkv, r, 1 / math.sqrt(dh), sort=True)
    return K_t, i1, q_hat, lens


def _check_keys(idx, logits, lens, k, window, sinks):
    _, _, key = select_topk_reference(logits, lens, k, window, sinks)
    assert torch.all(idx[..., 1:] > idx[..., :-1]), "indices sorted and distinct"
    chosen = torch.zeros_like(key, dtype=torch.bool).scatter_(-1, idx.long(), True)
    kmin = key.masked_fill(~chosen, math.inf).amin(-1)
    kmax_out = key.masked_fill(chosen, -math.inf).amax(-1)
    assert torch.all(kmin >= kmax_out), "a selected key is below an unselected one"
    n_forced = (key == math.inf).sum(-1)
    assert torch.all(chosen.logical_and(key == math.inf).sum(-1) == n_forced.clamp(max=k))


@pytest.mark.parametrize(
    ("B", "Hkv", "G", "S", "r", "k", "window", "sinks", "tile", "no_filter"),
    [
        (2, 2, 4, 300, 5, 19, 3, 2, 64, False),  # ragged rows, odd S, several tiles
        (2, 1, 4, 257, 3, 33, 5, 1, 32, False),  # many tiles, a 1-position last tile
        (1, 2, 3, 130, 7, 40, 0, 0, None, False),  # odd group, one tile
        (1, 1, 2, 4096, 4, 512, 16, 4, 1024, False),  # ~300 candidates per tile
        (2, 2, 4, 300, 5, 19, 3, 2, 64, True),  # nothing kept: every row falls back
        (2, 1, 4, 257, 3, 33, 5, 1, 32, True),
    ],
)
@pytest.mark.parametrize("no_lists", [False, True])
def test_prefiltered_selects_as_the_full_pass(
    B, Hkv, G, S, r, k, window, sinks, tile, no_filter, no_lists
):
    K_t, i1, q_hat, lens = _case(B, Hkv, G, S, r, seed=S + k + r)
    probe = {}
    idx, alpha = select_topk_prefiltered(
        K_t, i1, q_hat, lens, k, window, sinks, tile=tile, no_lists=no_lists, _probe=probe,
        _no_filter=no_filter,
    )  # fmt: skip
    # no_filter: every row must take the exact fallback; otherwise most rows resolve from
    # their candidates (on rows this short the 64-key sample's estimates send some rows to the
    # fallback, which must select the same)
    if no_filter:
        assert not bool(probe["ok"].any()), probe["ok"]
    else:
        assert int(probe["ok"].sum()) * 2 >= probe["ok"].numel(), probe["ok"]
    logits, tmax, tsum = approx_logits(K_t, i1, q_hat, lens, rows=True, tile=tile)
    ridx, ralpha = select_topk_hist(logits, tmax, tsum, lens, k, window, sinks, chunk=tile,
                                    lean=True, fast_cand=True, sort_search=True)  # fmt: skip
    assert torch.equal(idx.cpu(), ridx.cpu())
    # the same fp32 masses summed in another order (fallback: per block): 1e-5 absolute
    assert torch.allclose(alpha.cpu(), ralpha.cpu(), atol=1e-5)
    ref_logits = approx_logits_reference(K_t, i1, q_hat, lens).cpu()
    _check_keys(idx.cpu(), ref_logits, lens.cpu(), k, window, sinks)


def test_prefiltered_without_alpha_selects_the_same():
    K_t, i1, q_hat, lens = _case(2, 1, 4, 257, 3, seed=5)
    a, _ = select_topk_prefiltered(K_t, i1, q_hat, lens, 33, 5, 1, tile=32)
    b, _ = select_topk_prefiltered(K_t, i1, q_hat, lens, 33, 5, 1, tile=32, need_alpha=False)
    assert torch.equal(a, b)


def test_prefiltered_rejects_one_head_per_kv_head():
    assert not prefilter_supported(1, 4096, 64)
    assert prefilter_supported(4, 4096, 64)
    K_t, i1, q_hat, lens = _case(1, 2, 1, 128, 3, seed=1)
    with pytest.raises(ValueError, match="G >= 2"):
        select_topk_prefiltered(K_t, i1, q_hat, lens, 8)


@pytest.mark.parametrize("realloc", [True, False])
def test_dispatch_runs_the_prefiltered_entry(monkeypatch, realloc):
    import sparq.kernels._dispatch as dispatch
    from sparq.kernels import sparq_attention_triton

    g = torch.Generator().manual_seed(7)
    B, Hq, Hkv, S, dh = 2, 8, 2, 300, 32
    q, K, V = (torch.randn(B, h, n, dh, generator=g).to(torch.bfloat16).to(DEVICE)
               for h, n in ((Hq, 1), (Hkv, S), (Hkv, S)))  # fmt: skip
    lens = torch.tensor([S, 250]).to(DEVICE)
    kw = {"r": 8, "k": 40, "local_window": 4, "sink_tokens": 1, "seq_lens": lens,
          "K_t": K.transpose(-1, -2).contiguous(), "dense_fallback": False}  # fmt: skip
    if realloc:
        kw["v_mean"] = V.float().mean(2)
    calls = []
    real = dispatch.select_topk_prefiltered
    monkeypatch.setattr(dispatch, "select_topk_prefiltered",
                        lambda *a, **k: calls.append(k) or real(*a, **k))  # fmt: skip
    base = {"selection": "hist", "step1": {"rows": True, "tile": 64},
            "selection_kw": {"chunk": 64, "lean": True, "fast_cand": True,
                             "sort_search": True, "samples": 64}}  # fmt: skip
    pf = {**base, "selection_kw": {**base["selection_kw"], "prefilter": True, "margin": 2.5}}
    out = {}
    for name, entry in (("full", base), ("prefilter", pf)):
        monkeypatch.setattr(dispatch, "tuned_entry", lambda key, e=entry: e)
        out[name] = sparq_attention_triton(q, K, V, **kw).cpu()
    assert len(calls) == 1
    assert (calls[0]["tile"], calls[0]["margin"]) == (64, 2.5)
    # the same winners and masses: the same output bits
    assert torch.equal(out["full"], out["prefilter"])
    monkeypatch.setenv("SPARQ_PREFILTER", "0")  # the switch turns the tuned choice off
    assert torch.equal(sparq_attention_triton(q, K, V, **kw).cpu(), out["full"])
    assert len(calls) == 1
