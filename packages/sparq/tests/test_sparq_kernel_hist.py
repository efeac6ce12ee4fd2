"""The many-programs-per-row histogram selection vs the pure-torch reference.

Runs on CPU under ``TRITON_INTERPRET=1`` or on CUDA. Selections are compared through the
reference's keys (ties cannot fail a test): exactly k positions, sorted, every selected key >=
every unselected key, all forced positions kept, ties taken at the lowest positions.
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

from sparq.kernels import select_topk_hist, select_topk_reference  # noqa: E402
from sparq.kernels._select_hist import hist_plan, hist_supported  # noqa: E402


def _check(sel, logits, lens, k, window, sinks, check_alpha=True, bucketed=True, **kw):
    """Check one call; ``bucketed``: whether every row must resolve through the buckets (True)
    or through the exact full-row fallback (False)."""
    tmax, tsum = sel.stats(logits)
    dev = [x.to(DEVICE) for x in (logits, tmax, tsum, lens)]
    probe = {}
    idx, alpha = select_topk_hist(*dev, k, window, sinks, _probe=probe, **kw)
    assert bool(torch.all(probe["ok"] == bucketed)), probe["ok"]
    idx, alpha = idx.cpu(), alpha.cpu()
    _, ralpha, key = select_topk_reference(logits, lens, k, window, sinks)
    assert idx.shape == (*logits.shape[:2], k)
    assert torch.all(idx[..., 1:] > idx[..., :-1]), "indices sorted and distinct"
    chosen = torch.zeros_like(key, dtype=torch.bool).scatter_(-1, idx.long(), True)
    kmin = key.masked_fill(~chosen, math.inf).amin(-1)
    kmax_out = key.masked_fill(chosen, -math.inf).amax(-1)
    assert torch.all(kmin >= kmax_out), "a selected key is below an unselected one"
    # ties at the threshold go to the lowest positions (the reference's stable order)
    tied_out = (~chosen) & (key == kmin[..., None])
    first_out = torch.where(tied_out, torch.arange(key.shape[-1]), key.shape[-1]).amin(-1)
    last_in = torch.where(chosen & (key == kmin[..., None]), torch.arange(key.shape[-1]), -1)
    assert torch.all(last_in.amax(-1) < first_out), "a tie was taken at a higher position"
    n_forced = (key == math.inf).sum(-1)
    assert torch.all(chosen.logical_and(key == math.inf).sum(-1) == n_forced.clamp(max=k))
    if check_alpha and kw.get("need_alpha", True):
        # alpha sums fp32 probabilities in another order than torch: 1e-5 absolute.
        assert torch.allclose(alpha, ralpha, atol=1e-5)
    return idx


@pytest.mark.parametrize(
    ("B", "Hkv", "G", "S", "k", "window", "sinks", "chunk", "fuse"),
    [
        (2, 2, 1, 300, 19, 3, 2, 64, False),  # MHA, ragged, several chunks, odd S
        (2, 1, 4, 257, 33, 5, 1, 32, False),  # GQA group of 4, many chunks
        (2, 1, 4, 257, 33, 5, 1, 32, "lean"),  # scalar statistics in the candidate pass
        (2, 2, 1, 300, 19, 3, 2, 64, "lean"),
        (1, 2, 3, 130, 40, 0, 0, None, False),  # odd group, default plan (one chunk)
        (2, 1, 4, 257, 33, 5, 1, 32, "h256"),  # sample thresholds by histogram passes
        # unmasked interior chunks, histogram from the compacted candidates (alpha too)
        (2, 1, 4, 257, 33, 5, 1, 32, "fast"),
        (2, 2, 1, 300, 19, 3, 2, 64, "fast"),
        (1, 1, 2, 4096, 1024, 16, 4, 1024, "fast"),  # ~450 candidates per chunk: 4 blocks
        # sample thresholds read off one sort (with the fast candidate pass)
        (2, 1, 4, 257, 33, 5, 1, 32, "sort"),
        # histogram counts only; the resolve gathers the k-th key's bucket itself
        (2, 1, 4, 257, 33, 5, 1, 32, "nolist"),
        (1, 1, 2, 4096, 1024, 16, 4, 1024, "nolist"),
        (2, 1, 4, 257, 33, 5, 1, 32, "nolist2"),  # the bucket gathered by counter atomics
    ],
)
def test_hist_selection_matches_reference(sel, B, Hkv, G, S, k, window, sinks, chunk, fuse):
    logits, lens = sel.case(B, Hkv, G, S, seed=S + k)
    kw = {"lean": True} if fuse == "lean" else {"fuse_resolve": fuse}
    if fuse == "h256":
        kw = {"lean": True, "hist_search": True}
    if fuse == "fast":
        kw = {"lean": True, "fast_cand": True}
    if fuse == "sort":
        kw = {"lean": True, "fast_cand": True, "sort_search": True}
    if fuse in ("nolist", "nolist2"):
        kw = {"lean": True, "fast_cand": True, "sort_search": True,
              "no_lists": 2 if fuse == "nolist2" else True}  # fmt: skip
    _check(sel, logits, lens, k, window, sinks, chunk=chunk, **kw)


def test_hist_selection_without_alpha_selects_the_same(sel):
    logits, lens = sel.case(1, 1, 2, 200, seed=3)
    a = _check(sel, logits, lens, 25, 2, 1, chunk=32, need_alpha=False)
    b = _check(sel, logits, lens, 25, 2, 1, chunk=32)
    assert torch.equal(a, b)


def test_wider_margin_selects_the_same(sel):
    # the end-to-end row's plan: the wider margin only moves the sample ranks (T0 lower, Tq
    # down by as many ranks), the chunk capacity and buckets stay those of the default
    base, wide = hist_plan(32832, 2048, samples=512), hist_plan(32832, 2048, samples=512,
                                                                margin=2.25)  # fmt: skip
    assert (base["RANK"], base["RANKQ"]) == (56, 16)  # ceil(1.75*2048*512/32832), 2*56//7
    assert (wide["RANK"], wide["RANKQ"]) == (72, 32)  # ceil(2.25*2048*512/32832), 16 + 16
    assert (wide["CAP"], wide["NB"], wide["NCH"]) == (base["CAP"], base["NB"], base["NCH"])
    # a 256-key sample with margin 3: Tq stops at the k-th key's expected sample rank
    # (ceil(2048*256/32832) = 16) instead of 8 + 20 = 28, which left the k-th key of some rows
    # in the clamped top bucket (exact fallback)
    assert hist_plan(32832, 2048, samples=256, margin=3.0)["RANKQ"] == 16
    with pytest.raises(ValueError, match="margin"):
        hist_plan(32832, 2048, margin=1.5)
    kw = {"lean": True, "fast_cand": True, "sort_search": True}
    for G, S, k, chunk in ((4, 257, 33, 32), (1, 300, 19, 64)):
        logits, lens = sel.case(2, 1, G, S, seed=S + 1)
        a = _check(sel, logits, lens, k, 5, 1, chunk=chunk, **kw)
        b = _check(sel, logits, lens, k, 5, 1, chunk=chunk, margin=2.25, **kw)
        assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(DEVICE != "cuda", reason="the end-to-end row's shape needs CUDA")
def test_end_to_end_row_shape_with_a_wider_margin(sel):
    # the end-to-end decode layer's selection (B=16, 8 KV heads of 4 query heads, a 32k cache
    # plus 64 decoded positions, k=2048, window 64, sinks 4) with the tuned launch options:
    # exact against the reference, every row resolved through the buckets
    logits, lens = sel.case(16, 8, 4, 32832, seed=11, ragged=False)
    kw = {"lean": True, "fast_cand": True, "sort_search": True, "thr_warps": 8}
    a = _check(sel, logits, lens, 2048, 64, 4, samples=512, margin=2.25, **kw)
    b = _check(sel, logits, lens, 2048, 64, 4, samples=1024, **kw)
    c = _check(sel, logits, lens, 2048, 64, 4, samples=256, margin=3.0, **kw)
    assert torch.equal(a, b)
    assert torch.equal(a, c)


def test_l2_hints_and_chunk_major_grid_select_the_same(sel):
    # the L2 launch mode only adds eviction hints to the logits loads (candidate pass): same
    # selection and alpha
    from sparq.kernels._common import pdl_launches

    logits, lens = sel.case(1, 1, 3, 130, seed=5)
    a = _check(sel, logits, lens, 20, 3, 1, chunk=32, lean=True)
    with pdl_launches(False, l2=True):
        b = _check(sel, logits, lens, 20, 3, 1, chunk=32, lean=True)
    assert torch.equal(a, b)
    # the chunk-major grid of the candidate pass and the fast candidate pass: the same too
    c = _check(sel, logits, lens, 20, 3, 1, chunk=32, lean=True, chunk_major=True)
    assert torch.equal(a, c)
    with pdl_launches(False, l2=True):
        d = _check(sel, logits, lens, 20, 3, 1, chunk=32, lean=True, fast_cand=True)
    assert torch.equal(a, d)


def test_merged_count_emit_selects_the_same(sel):
    # one kernel with a look-back over the chunks' published winner counts: same positions and
    # order as the count + emit pair, over ragged rows of a group of 3 (7 chunks each)
    logits, lens = sel.case(2, 2, 3, 210, seed=13)
    a = _check(sel, logits, lens, 27, 3, 1, check_alpha=False, chunk=32, need_alpha=False,
               merge_emit=True, lean=True)  # fmt: skip
    b = _check(sel, logits, lens, 27, 3, 1, chunk=32, lean=True)
    assert torch.equal(a, b)
    # a bad sample (one overfull chunk): the ticket-0 program runs the exact fallback
    logits, lens = sel.case(1, 1, 1, 512, seed=7, ragged=False)
    logits[..., 64:112] += 50
    _check(sel, logits, lens, 32, 2, 1, check_alpha=False, bucketed=False, chunk=64,
           need_alpha=False, merge_emit=True)  # fmt: skip


def test_ties_and_bad_samples_stay_exact(sel):
    # quantised logits: many exact ties at the threshold, resolved inside the bucket lists
    logits, lens = sel.case(2, 1, 1, 240, seed=5, ragged=False)
    logits = (logits * 4).round() / 4
    idx = _check(sel, logits, lens, 30, 0, 0, chunk=64)
    assert torch.equal(idx, _check(sel, logits, lens, 30, 0, 0, chunk=64, fuse_resolve=True))
    fast = {"chunk": 64, "lean": True, "fast_cand": True, "sort_search": True}
    assert torch.equal(idx, _check(sel, logits, lens, 30, 0, 0, **fast))
    assert torch.equal(idx, _check(sel, logits, lens, 30, 0, 0, **fast, no_lists=True))
    assert torch.equal(idx, _check(sel, logits, lens, 30, 0, 0, **fast, no_lists=2))
    kth = logits[:, 0, 0].gather(-1, idx[:, 0].long()).amin(-1)  # the threshold key per row
    assert int((logits[:, 0, 0] == kth[:, None]).sum()) > 2, "the case must hold ties"
    # the 48 largest logits in one chunk: that chunk overflows -> exact full-row fallback
    logits, lens = sel.case(2, 1, 1, 512, seed=7, ragged=False)
    logits[..., 64:112] += 50
    assert hist_plan(512, 32, chunk=64)["CAP"] < 48
    _check(sel, logits, lens, 32, 2, 1, bucketed=False, chunk=64)
    _check(sel, logits, lens, 32, 2, 1, bucketed=False, **fast)
    # a constant row: one bucket holds everything (more than the list keeps) -> fallback
    _check(sel, torch.zeros(1, 1, 1, 200), torch.tensor([200]), 24, 0, 0, bucketed=False, chunk=32)
    # more forced positions than k: the k-th key is +inf (clamped top bucket) -> fallback; the
    # reference breaks those ties arbitrarily (torch.topk), so its alpha is not comparable
    logits, lens = sel.case(1, 1, 2, 100, seed=9)
    _check(sel, logits, lens, 10, 12, 2, check_alpha=False, bucketed=False, chunk=32)


def test_plan_and_bad_input(sel):
    p = hist_plan(131072, 8192)  # K3 row: 128 chunks of 1024, 4096 buckets
    assert (p["NCH"], p["NB"]) == (128, 4096)
    assert p["CAP"] >= 2.5 * 1.75 * 8192 * 1024 / 131072
    assert p["RANKQ"] < p["RANK"]
    assert hist_supported(131072, 8192)
    assert not hist_supported(32, 4)
    logits, lens = sel.case(1, 1, 1, 32)
    tmax, tsum = sel.stats(logits)
    with pytest.raises(ValueError, match="S >= 64"):
        select_topk_hist(logits.to(DEVICE), tmax.to(DEVICE), tsum.to(DEVICE), lens.to(DEVICE), 4)
