"""Baselines: full budgets reduce to dense; budgets match the transfer model."""

import math

import pytest
import torch

from sparq import baselines as bl
from sparq.baselines._common import causal_valid, dense_attention


def _qkv(B=2, Hq=4, Hkv=2, S=24, T=5, dh=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, Hq, T, dh, generator=g),
        torch.randn(B, Hkv, S, dh, generator=g),
        torch.randn(B, Hkv, S, dh, generator=g),
        torch.randn(B, Hq, S - T, dh, generator=g),
    )


def test_full_budget_methods_equal_dense():
    q, K, V, pq = _qkv()
    B, _, T, dh = q.shape
    S = K.shape[2]
    valid = causal_valid(B, T, S, q.device)
    sc = 1 / math.sqrt(dh)
    ref = dense_attention(q, K, V, valid, sc)
    outs = {
        "oracle": bl.oracle_topk_attention(q, K, V, valid, k=S, scale=sc),
        "streaming": bl.streaming_attention(q, K, V, valid, k=S, sink_tokens=2, scale=sc),
        "quest": bl.quest_attention(q, K, V, valid, pages=S, page_size=4, scale=sc),
        "loki": bl.loki_attention(q, K, V, valid, r=dh, k=S, local_window=1, scale=sc),
        "h2o": bl.h2o_attention(q, K, V, valid, k=S, scale=sc, prefill_q=pq),
    }
    for name, y in outs.items():
        # same fp32 maths over the same key set; only the masking path differs
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5, msg=name)


def test_dense_method_through_harness():
    q, K, V, _ = _qkv(seed=1)
    y, knobs = bl.multi_query_attention("dense", q, K, V, compression=8)
    B, _, T, dh = q.shape
    ref = dense_attention(q, K, V, causal_valid(B, T, K.shape[2], q.device), 1 / math.sqrt(dh))
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=1e-6)
    assert knobs["transfer"] == 1.0


@pytest.mark.parametrize("method", ["sparq", "oracle_topk", "h2o", "streaming_llm", "loki"])
@pytest.mark.parametrize("c", [2, 4, 8, 16])
def test_budgets_match_target_transfer(method, c):
    b = bl.budget(method, 8192, 128, c)
    # rounding r and k to integers keeps the modelled transfer within 2 % of 1/c
    assert b["transfer"] == pytest.approx(1 / c, rel=0.02)


def test_quest_budget_pays_for_page_bounds():
    b = bl.budget("quest", 8192, 128, 8)
    assert b["page_size"] == 16
    assert b["transfer"] == pytest.approx(1 / 8, rel=0.05)


def test_h2o_keeps_budget_and_streaming_keeps_sinks():
    q, K, _, pq = _qkv(B=1, S=40, T=6, seed=3)
    valid = causal_valid(1, 6, 40, q.device)
    sc = 0.25
    # V = one-hot positions: output mass reveals the kept set
    Vi = torch.eye(40)[None, None].expand(1, 2, 40, 40).contiguous()
    qq = torch.nn.functional.pad(q, (0, 24))
    Kp = torch.nn.functional.pad(K, (0, 24))
    pqp = torch.nn.functional.pad(pq, (0, 24))
    y = bl.h2o_attention(qq, Kp, Vi, valid, k=8, scale=sc, prefill_q=pqp)
    assert ((y[0, :, :] > 0).sum(-1) <= 8).all()
    assert (y[0, :, -1, 36:] > 0).all()  # the last row keeps its k // 2 = 4 most recent tokens
    ys = bl.streaming_attention(qq, Kp, Vi, valid, k=8, sink_tokens=2, scale=sc)
    last = (ys[0, 0, -1] > 0).nonzero().flatten().tolist()
    assert last == [0, 1, 34, 35, 36, 37, 38, 39]


def test_unknown_method_rejected():
    with pytest.raises(ValueError, match="unknown method"):
        bl.budget("magic", 100, 64, 8)
