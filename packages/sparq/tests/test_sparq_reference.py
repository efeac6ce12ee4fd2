"""Exactness of the SparQ reference vs dense SDPA and vs an independent loop reference."""

import math

import pytest
import torch
import torch.nn.functional as F

import sparq
from sparq._reference import forced_positions


def dense(q, K, V, seq_lens=None):
    g = q.shape[1] // K.shape[1]
    Kx, Vx = K.repeat_interleave(g, 1), V.repeat_interleave(g, 1)
    mask = None
    if seq_lens is not None:
        mask = (torch.arange(K.shape[2])[None, :] < seq_lens[:, None])[:, None, None]
    return F.scaled_dot_product_attention(q, Kx, Vx, attn_mask=mask)


@pytest.mark.parametrize(("Hq", "Hkv"), [(1, 1), (4, 2), (8, 1), (4, 4)])
@pytest.mark.parametrize("dh", [64, 128])
def test_full_budget_equals_dense(inputs, Hq, Hkv, dh):
    q, K, V = inputs(2, Hq, Hkv, 17, dh)
    sl = torch.tensor([17, 9])
    y = sparq.sparq_attention(q, K, V, r=dh, k=17, seq_lens=sl, reallocation=False)
    # fp32 vs fp32 SDPA: same maths, different summation order -> 1e-5 (issue tolerance)
    torch.testing.assert_close(y, dense(q, K, V, sl), atol=1e-5, rtol=1e-5)


def test_reallocation_full_budget_alpha_one(inputs):
    q, K, V = inputs(2, 4, 4, 33, 64)
    y, st = sparq.sparq_attention(q, K, V, r=64, k=40, reallocation=True, return_stats=True)
    torch.testing.assert_close(st.alpha, torch.ones_like(st.alpha), atol=1e-6, rtol=0)
    torch.testing.assert_close(y, dense(q, K, V), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("Hq", "Hkv", "dh", "S", "r", "k", "win", "sink", "realloc"),
    [
        (1, 1, 64, 31, 8, 5, 2, 1, True),
        (2, 1, 64, 23, 16, 7, 0, 0, False),
        (4, 2, 128, 19, 12, 6, 3, 0, False),
        (8, 8, 64, 13, 5, 4, 1, 2, True),
        (8, 1, 128, 21, 32, 9, 2, 2, False),
    ],
)
def test_matches_loop_reference(loop_reference, inputs, Hq, Hkv, dh, S, r, k, win, sink, realloc):
    q, K, V = inputs(2, Hq, Hkv, S, dh, seed=S)
    sl = torch.tensor([S, S // 2 + 1])  # ragged, odd lengths
    y, st = sparq.sparq_attention(
        q, K, V, r=r, k=k, local_window=win, sink_tokens=sink, seq_lens=sl,
        reallocation=realloc, return_stats=True,
    )  # fmt: skip
    y_ref, sels = loop_reference(
        q, K, V, r=r, k=k, local_window=win, sink_tokens=sink, seq_lens=sl, reallocation=realloc
    )
    for (b, j), sel in sels.items():
        got = sorted(i for i in st.indices[b, j].tolist() if i >= 0)
        assert got == sel
    # fp32 implementation vs fp64 loop: rounding of O(S·dh) fp32 sums stays far below 1e-5
    torch.testing.assert_close(y.double(), y_ref, atol=1e-5, rtol=1e-5)


def test_window_and_sinks_always_selected(inputs):
    q, K, V = inputs(3, 4, 2, 41, 64, seed=3)
    sl = torch.tensor([41, 20, 7])
    _, st = sparq.sparq_attention(
        q, K, V, r=4, k=8, local_window=3, sink_tokens=2, seq_lens=sl, return_stats=True
    )
    for b, n in enumerate(sl.tolist()):
        want = {0, 1, n - 3, n - 2, n - 1}
        for j in range(2):
            sel = set(st.indices[b, j].tolist()) - {-1}
            assert want <= sel
            assert len(sel) == min(8, n)  # exactly k positions (window and sinks inside k)


def test_exactly_k_positions_get_weight(inputs):
    # Put V = one-hot position codes so the output reveals which positions got weight.
    S, k = 24, 6
    q, K, _ = inputs(1, 2, 2, S, 64, seed=5)
    V = torch.eye(S)[None, None, :, :].expand(1, 2, S, S).contiguous()
    q = torch.nn.functional.pad(q, (0, S - 64)) if S > 64 else q[..., :S]
    K = K[..., :S]
    y = sparq.sparq_attention(q, K, V, r=4, k=k, local_window=2, reallocation=False)
    nz = (y[0, :, 0] > 0).sum(-1)
    assert nz.tolist() == [k, k]
    torch.testing.assert_close(y.sum(-1), torch.ones(1, 2, 1), atol=1e-6, rtol=0)


def test_gqa_equals_per_head_with_shared_indices(inputs):
    q, K, V = inputs(2, 4, 1, 29, 64, seed=7)
    y, st = sparq.sparq_attention(q, K, V, r=8, k=5, return_stats=True, reallocation=False)
    idx = st.indices[:, 0]  # shared by the 4 query heads of the single KV head
    for h in range(4):
        for b in range(2):
            Ks, Vs = K[b, 0, idx[b]], V[b, 0, idx[b]]
            w = torch.softmax(q[b, h, 0] @ Ks.T / 8.0, -1)
            torch.testing.assert_close(y[b, h, 0], w @ Vs, atol=1e-5, rtol=1e-5)


def test_tau_correction_formula():
    # One query head, S=2: check s_hat against the paper's 1/sqrt(dh·||q[i1]||_1/||q||_1).
    dh, r = 4, 2
    q = torch.tensor([[[[3.0, -2.0, 0.5, 0.5]]]])
    K = torch.tensor([[[[1.0, 0.0, 5.0, 5.0], [0.0, 1.0, -5.0, 5.0]]]])
    V = torch.randn(1, 1, 2, dh)
    _, st = sparq.sparq_attention(q, K, V, r=r, k=1, reallocation=False, return_stats=True)
    cov = 5.0 / 6.0
    s = torch.tensor([3.0, -2.0]) / math.sqrt(dh * cov)
    want_alpha = torch.softmax(s, 0)[0]
    assert st.components[0, 0].tolist() == [0, 1]
    assert st.indices[0, 0].tolist() == [0]
    torch.testing.assert_close(st.coverage[0, 0], torch.tensor(cov), atol=1e-6, rtol=0)
    torch.testing.assert_close(st.alpha[0, 0], want_alpha, atol=1e-6, rtol=0)


def test_ties_go_to_lower_index():
    q = torch.ones(1, 1, 1, 4)
    K = torch.zeros(1, 1, 9, 4)  # all scores tie
    V = torch.randn(1, 1, 9, 4)
    _, st = sparq.sparq_attention(q, K, V, r=2, k=3, return_stats=True, reallocation=False)
    assert st.components[0, 0].tolist() == [0, 1]
    assert st.indices[0, 0].tolist() == [0, 1, 2]


def test_left_padding_mask_matches_unpadded(inputs):
    q, K, V = inputs(1, 2, 2, 15, 64, seed=11)
    pad = 4
    Kp = torch.cat([torch.randn(1, 2, pad, 64), K], 2)
    Vp = torch.cat([torch.randn(1, 2, pad, 64), V], 2)
    mask = torch.arange(15 + pad)[None] >= pad
    kw = {"r": 8, "k": 5, "local_window": 2, "sink_tokens": 1, "reallocation": True}
    y1 = sparq.sparq_attention(q, K, V, **kw)
    y2 = sparq.sparq_attention(q, Kp, Vp, attention_mask=mask, **kw)
    torch.testing.assert_close(y1, y2, atol=1e-6, rtol=1e-6)


def test_k_t_and_bf16_paths(inputs):
    q, K, V = inputs(2, 4, 2, 37, 64, seed=13)
    y1 = sparq.sparq_attention(q, K, V, r=8, k=9)
    y2 = sparq.sparq_attention(q, K, V, r=8, k=9, K_t=K.transpose(-1, -2).contiguous())
    assert torch.equal(y1, y2)
    qb, Kb, Vb = q.bfloat16(), K.bfloat16(), V.bfloat16()
    y3 = sparq.sparq_attention(qb, Kb, Vb, r=8, k=9)
    assert y3.dtype == torch.bfloat16
    assert torch.isfinite(y3.float()).all()


def test_prefill_equals_stepwise_decode(inputs):
    gen = torch.Generator().manual_seed(2)
    B, Hq, Hkv, S, dh, T = 2, 4, 2, 21, 64, 7
    q = torch.randn(B, Hq, T, dh, generator=gen)
    _, K, V = inputs(B, Hq, Hkv, S, dh, seed=2)
    kw = {"r": 8, "k": 5, "local_window": 2, "sink_tokens": 1, "reallocation": True}
    yp = sparq.sparq_attention_prefill(q, K, V, chunk=3, **kw)
    for t in range(T):
        n = S - T + t + 1
        yd = sparq.sparq_attention(q[:, :, t : t + 1], K[:, :, :n], V[:, :, :n], **kw)
        # masked (prefill) vs gathered (decode) evaluation: fp32 reordering only
        torch.testing.assert_close(yp[:, :, t : t + 1], yd, atol=1e-5, rtol=1e-5)


def test_forced_positions_left_padded():
    valid = torch.tensor([[False, False, True, True, True, True]])
    f = forced_positions(valid, local_window=1, sink_tokens=1)
    assert f.tolist() == [[False, False, True, False, False, True]]
