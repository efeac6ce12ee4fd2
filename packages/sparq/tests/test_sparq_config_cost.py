"""SparQConfig planning (live length, fallbacks) and the transfer model."""

import pytest

import sparq
from sparq import cost


def test_transfer_formulas_match_paper():
    S, dh, r, k = 4096, 128, 16, 256
    assert cost.dense_elements(S, dh) == 2 * S * dh + 2 * dh
    assert cost.sparq_elements(S, dh, r, k) == S * r + 2 * k * dh + 4 * dh
    ratio = cost.compression_ratio(S, dh, r, k)
    assert ratio == pytest.approx((2 * S * dh + 2 * dh) / (S * r + 2 * k * dh + 4 * dh))


def test_rk_for_compression_hits_target():
    for c in (2, 4, 8, 16):
        r, k = cost.rk_for_compression(16384, 128, c)
        # rounding of r and k moves the achieved ratio by < 2 %
        assert cost.compression_ratio(16384, 128, r, k) == pytest.approx(c, rel=0.02)


def test_decode_bytes_and_roofline():
    b = cost.decode_bytes(64, 32, 32, 16384, 128)
    assert b == pytest.approx(64 * 32 * (2 * 16384 * 128 + 2 * 128) * 2)
    # 17.18 GB of K+V at 4.3 TB/s is about 4.0 ms (research note §3.3)
    assert cost.roofline_seconds(b) == pytest.approx(4.0e-3, rel=0.01)


def test_plan_uses_live_length():
    cfg = sparq.SparQConfig(compression=8, local_window=16)
    p1 = cfg.plan(1024, 128)
    p2 = cfg.plan(8192, 128)
    assert (p1.r, p1.k) == (16, 64)
    assert (p2.r, p2.k) == (16, 512)
    assert not p1.dense
    assert p1.reallocation  # MHA default
    assert not cfg.plan(1024, 128, num_q_heads=32, num_kv_heads=8).reallocation  # GQA default


def test_plan_dense_fallbacks():
    cfg = sparq.SparQConfig(compression=8, min_seq_len=512)
    assert cfg.plan(100, 128).dense
    assert not cfg.plan(600, 128).dense
    assert sparq.SparQConfig(r=8, k=64).plan(64, 128).dense  # k >= S: nothing to save
    assert not sparq.SparQConfig(r=8, k=64, dense_fallback=False).plan(64, 128).dense
    p = sparq.SparQConfig(r=8, k=4, local_window=16, sink_tokens=2).plan(1000, 64)
    assert (p.sink_tokens, p.local_window) == (2, 2)  # clipped to fit in k


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({}, "compression"),
        ({"compression": 0.5}, "compression"),
        ({"r": 0, "k": 4}, "r must"),
        ({"r": 4, "k": 0}, "k must"),
        ({"compression": 8, "local_window": -1}, "local_window"),
    ],
)
def test_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        sparq.SparQConfig(**kw)


def test_plan_rejects_r_above_head_dim():
    with pytest.raises(ValueError, match="head_dim"):
        sparq.SparQConfig(r=256, k=4).plan(1000, 128)
