"""Step 1 with bf16 logits and the histogram selection on them, vs the pure-torch references.

Runs on CPU under ``TRITON_INTERPRET=1`` or on CUDA. The stored logits must be the fp32
reference's rounded to bf16 (at most one bf16 ulp apart where the fp32 sums round differently),
the tile statistics those of the stored values, and the selection exact for the stored values
(checked through the reference's keys of those values: exactly k, every selected key >= every
unselected key, forced positions kept).
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


def _case(B, Hkv, G, S, r, seed):
    g = torch.Generator().manual_seed(seed)
    dh = 32
    q = torch.randn(B, Hkv * G, 1, dh, generator=g)
    q = (q * (1 + 4 * (torch.rand(q.shape, generator=g) > 0.9))).to(torch.bfloat16)
    K = torch.randn(B, Hkv, S, dh, generator=g).to(torch.bfloat16)
    lens = torch.full((B,), S, dtype=torch.int64)
    lens[1:] = torch.randint(S // 2, S + 1, (B - 1,), generator=g)
    q, K, lens = q.to(DEVICE), K.to(DEVICE), lens.to(DEVICE)
    K_t = K.transpose(-1, -2).contiguous()
    i1, q_hat = prepare_query_fused(q, Hkv, r, 1 / math.sqrt(dh), sort=True)
    return K_t, i1, q_hat, lens


@pytest.mark.parametrize(("G", "S", "tile"), [(4, 300, 64), (3, 257, 32), (2, 130, None)])
def test_bf16_logits_are_the_rounded_reference(G, S, tile):
    K_t, i1, q_hat, lens = _case(2, 2, G, S, 5, seed=G + S)
    lg, tmax, tsum = approx_logits(K_t, i1, q_hat, lens, rows=True, tile=tile,
                                   logits_dtype="bfloat16")  # fmt: skip
    assert lg.dtype == torch.bfloat16
    ref = approx_logits_reference(K_t, i1, q_hat, lens, torch.bfloat16).cpu()
    got = lg.float().cpu()
    fin = torch.isfinite(ref)
    assert torch.equal(fin, torch.isfinite(got))
    # fp32 sums in another order may round to the neighbouring bf16 value: one ulp (2^-7
    # relative) at most, and rarely
    assert torch.allclose(got[fin], ref[fin], rtol=2**-7, atol=1e-6)
    assert (got[fin] != ref[fin]).float().mean() < 0.01
    # the tile statistics are those of the stored (rounded) values
    nt = tmax.shape[-1]
    t = tile or lg.shape[-1]
    pad = nt * t - S
    x = torch.nn.functional.pad(got, (0, pad), value=-math.inf).reshape(*got.shape[:3], nt, t)
    m = x.amax(-1)
    assert torch.equal(m, tmax.cpu())
    ms = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    assert torch.allclose((x - ms[..., None]).exp().sum(-1), tsum.cpu(), rtol=1e-5)


@pytest.mark.parametrize("kw", [
    {"lean": True, "fast_cand": True, "sort_search": True, "no_lists": True},
    {"lean": True, "sort_search": True},
    {},
])  # fmt: skip
def test_hist_selection_on_bf16_logits_is_exact_for_them(kw):
    B, Hkv, G, S, k, window, sinks = 2, 2, 4, 300, 19, 3, 2
    K_t, i1, q_hat, lens = _case(B, Hkv, G, S, 5, seed=11)
    lg, tmax, tsum = approx_logits(K_t, i1, q_hat, lens, rows=True, tile=64,
                                   logits_dtype=torch.bfloat16)  # fmt: skip
    idx, alpha = select_topk_hist(lg, tmax, tsum, lens, k, window, sinks, chunk=64, **kw)
    idx = idx.cpu()
    _, ralpha, key = select_topk_reference(lg.float().cpu(), lens.cpu(), k, window, sinks)
    assert torch.all(idx[..., 1:] > idx[..., :-1]), "indices sorted and distinct"
    chosen = torch.zeros_like(key, dtype=torch.bool).scatter_(-1, idx.long(), True)
    kmin = key.masked_fill(~chosen, math.inf).amin(-1)
    kmax_out = key.masked_fill(chosen, -math.inf).amax(-1)
    assert torch.all(kmin >= kmax_out), "a selected key is below an unselected one"
    n_forced = (key == math.inf).sum(-1)
    assert torch.all(chosen.logical_and(key == math.inf).sum(-1) == n_forced.clamp(max=k))
    # alpha sums fp32 probabilities in another order than torch: 1e-5 absolute
    assert torch.allclose(alpha.cpu(), ralpha, atol=1e-5)


def test_bf16_logits_need_the_row_loop_and_a_group():
    K_t, i1, q_hat, lens = _case(2, 2, 1, 130, 5, seed=1)
    with pytest.raises(ValueError, match="G >= 2"):
        approx_logits(K_t, i1, q_hat, lens, rows=True, logits_dtype=torch.bfloat16)
    K_t, i1, q_hat, lens = _case(2, 2, 4, 130, 5, seed=1)
    with pytest.raises(ValueError, match="rows=True"):
        approx_logits(K_t, i1, q_hat, lens, logits_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        approx_logits(K_t, i1, q_hat, lens, rows=True, logits_dtype=torch.float16)
