"""The sampled-threshold selection vs the pure-torch reference (CPU interpreter or CUDA).

Selections are compared through the reference's keys (ties cannot fail a test): exactly k
positions, sorted, every selected key >= every unselected key, all forced positions kept.
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

from sparq.kernels import select_topk_reference, select_topk_sampled  # noqa: E402
from sparq.kernels._select_sample import sample_plan, sampled_supported  # noqa: E402


def _check(sel, logits, lens, k, window, sinks, **kw):
    tmax, tsum = sel.stats(logits)
    dev = [x.to(DEVICE) for x in (logits, tmax, tsum, lens)]
    idx, alpha = select_topk_sampled(*dev, k, window, sinks, **kw)
    idx, alpha = idx.cpu(), alpha.cpu()
    _, ralpha, key = select_topk_reference(logits, lens, k, window, sinks)
    assert idx.shape == (*logits.shape[:2], k)
    assert torch.all(idx[..., 1:] > idx[..., :-1]), "indices sorted and distinct"
    chosen = torch.zeros_like(key, dtype=torch.bool).scatter_(-1, idx.long(), True)
    kmin = key.masked_fill(~chosen, math.inf).amin(-1)
    kmax_out = key.masked_fill(chosen, -math.inf).amax(-1)
    assert torch.all(kmin >= kmax_out), "a selected key is below an unselected one"
    n_forced = (key == math.inf).sum(-1)
    assert torch.all(chosen.logical_and(key == math.inf).sum(-1) == n_forced.clamp(max=k))
    # alpha sums fp32 probabilities in another order than torch: 1e-5 absolute.
    assert torch.allclose(alpha, ralpha, atol=1e-5)


@pytest.mark.parametrize(
    ("B", "Hkv", "G", "S", "k", "window", "sinks", "chunk", "radix16"),
    [
        (2, 2, 1, 300, 19, 3, 2, 64, False),  # MHA, ragged, several chunks, odd S
        (2, 2, 1, 300, 19, 3, 2, 64, True),  # the same with radix-16 threshold searches
        (2, 2, 1, 300, 19, 3, 2, 64, "lean"),  # scalar statistics in the candidate pass
        (2, 1, 4, 257, 33, 5, 1, 32, "lean"),  # the same for a group of 4
        (2, 1, 4, 257, 33, 5, 1, 32, False),  # GQA group of 4
        (1, 2, 3, 130, 40, 0, 0, None, True),  # odd group, default plan
        (2, 2, 1, 300, 19, 3, 2, 64, "h256"),  # both searches by radix-256 histograms
        (2, 1, 4, 257, 33, 5, 1, 32, "r4"),  # both searches by packed radix-4 passes
        (2, 2, 1, 300, 19, 3, 2, 64, "keyalpha"),  # MHA alpha from the winners' keys
        (2, 1, 4, 257, 33, 5, 1, 32, "dense"),  # live candidate slots packed before the search
    ],
)
def test_sampled_selection_matches_reference(sel, B, Hkv, G, S, k, window, sinks, chunk, radix16):
    logits, lens = sel.case(B, Hkv, G, S, seed=S + k)
    kw = {"lean": True} if radix16 == "lean" else {"radix16": radix16}
    if radix16 in ("h256", "r4"):
        kw = {"lean": True, "hist_search": radix16 == "h256", "radix4": radix16 == "r4"}
    if radix16 == "keyalpha":
        kw = {"lean": True, "key_alpha": True, "radix4": True}
    if radix16 == "dense":  # every row's ~60 candidates fit the packed block of 128 keys
        kw = {"lean": True, "dense_block": 128, "forced_cap": True}
    _check(sel, logits, lens, k, window, sinks, chunk=chunk, **kw)


def test_sampled_selection_without_alpha_selects_the_same(sel):
    # a group of 4 with the histogram searches, against the default searches with alpha
    logits, lens = sel.case(2, 1, 4, 257, seed=11)
    tmax, tsum = sel.stats(logits)
    dev = [x.to(DEVICE) for x in (logits, tmax, tsum, lens)]
    a, _ = select_topk_sampled(*dev, 33, 5, 1, chunk=32, lean=True, hist_search=True,
                               need_alpha=False)  # fmt: skip
    b, _ = select_topk_sampled(*dev, 33, 5, 1, chunk=32, lean=True)
    assert torch.equal(a.cpu(), b.cpu())


def test_bad_sample_takes_the_exact_fallback(sel):
    # the 48 largest logits sit in one chunk, so that chunk overflows its candidate slots and the
    # final kernel must take the full-row radix search; the answer is still exact
    logits, lens = sel.case(2, 1, 1, 256, seed=7, ragged=False)
    logits[..., 64:112] += 50
    plan = sample_plan(256, 32, chunk=64)
    assert plan["CAP"] < 48
    _check(sel, logits, lens, 32, 2, 1, chunk=64)
    # ties everywhere (a constant row): the lowest positions win, still exactly k of them
    flat = torch.zeros(1, 1, 1, 200)
    _check(sel, flat, torch.tensor([200]), 24, 0, 0, chunk=32)
    _check(sel, flat, torch.tensor([200]), 24, 0, 0, chunk=32, radix16=True)
    _check(sel, flat, torch.tensor([200]), 24, 0, 0, chunk=32, hist_search=True)
    _check(sel, flat, torch.tensor([200]), 24, 0, 0, chunk=32, radix4=True)
    # quantised logits: many exact ties at the k-th key among the candidate slots
    logits, lens = sel.case(2, 1, 1, 240, seed=5, ragged=False)
    _check(sel, (logits * 4).round() / 4, lens, 30, 0, 0, chunk=64, hist_search=True)


def test_plan_and_bad_input(sel):
    p = sample_plan(16384, 1024)  # K1 row: 16 chunks of 1024, 256 slots each
    assert (p["NCH"], p["CAP"], p["slots"]) == (16, 256, 4096)
    assert p["RANK"] == math.ceil(1.75 * 1024 * p["SAMP"] / 16384)
    # 512-position chunks with a 64-position window: room for the window in the last chunk
    assert sample_plan(16384, 1024, 512)["CAP"] == 128
    assert sample_plan(16384, 1024, 512, forced=68)["CAP"] >= 56 + 68 + 4 * 56**0.5
    assert sampled_supported(32768, 2048)
    assert not sampled_supported(131072, 8192)
    logits, lens = sel.case(1, 1, 1, 32)
    tmax, tsum = sel.stats(logits)
    with pytest.raises(ValueError, match="S >= 64"):
        select_topk_sampled(logits.to(DEVICE), tmax.to(DEVICE), tsum.to(DEVICE), lens.to(DEVICE), 4)


@pytest.mark.parametrize(("B", "H", "S", "k", "window", "sinks", "tile", "boost", "h256"), [
    (2, 2, 300, 40, 3, 2, 64, False, False),  # ragged, odd S, several tiles: the slot path
    (1, 1, 256, 32, 2, 1, 64, True, False),  # top keys packed in one tile: the K_t fallback path
    (2, 2, 300, 40, 3, 2, 64, False, True),  # searches by radix-256 histograms
])  # fmt: skip
def test_fused_mha_matches_two_step_pipeline(B, H, S, k, window, sinks, tile, boost, h256):
    from sparq.kernels import approx_logits, prepare_query
    from sparq.kernels._fused_mha import select_fused_mha

    g = torch.Generator().manual_seed(S)
    dh, r = 64, 8
    q = torch.randn(B, H, 1, dh, generator=g)
    K = torch.randn(B, H, S, dh, generator=g)
    if boost:  # make positions 64..111 the largest approximate logits
        K[:, :, 64:112] += 3 * q[:, :, 0, None, :].sign()
    q, K = q.to(torch.float16).to(DEVICE), K.to(torch.float16).to(DEVICE)
    lens = torch.full((B,), S, dtype=torch.int64)
    lens[1:] = S - 37
    lens = lens.to(DEVICE)
    K_t = K.transpose(-1, -2).contiguous()
    i1, q_hat = prepare_query(q, H, r, dh**-0.5)
    idx, alpha = select_fused_mha(K_t, i1, q_hat, lens, k, window, sinks, tile=tile,
                                  hist_search=h256)  # fmt: skip
    logits, _, _ = approx_logits(K_t, i1, q_hat, lens)
    _, ralpha, key = select_topk_reference(logits.cpu(), lens.cpu(), k, window, sinks)
    idx, alpha = idx.cpu(), alpha.cpu()
    assert torch.all(idx[..., 1:] > idx[..., :-1]), "indices sorted and distinct"
    chosen = torch.zeros_like(key, dtype=torch.bool).scatter_(-1, idx.long(), True)
    kmin = key.masked_fill(~chosen, math.inf).amin(-1)
    kmax_out = key.masked_fill(chosen, -math.inf).amax(-1)
    # the fused kernel recomputes the fp32 logits (same products, maybe another summation
    # order): 1e-5 relative slack for near-ties
    assert torch.all(kmin >= kmax_out - 1e-5 * kmax_out.abs())
    assert torch.all(chosen.logical_and(key == math.inf).sum(-1) == (key == math.inf).sum(-1))
    assert torch.allclose(alpha, ralpha, atol=1e-5)
