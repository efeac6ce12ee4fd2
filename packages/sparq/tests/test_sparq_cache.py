"""SparQCache invariants: K_t is K transposed, running V mean is the true per-sequence mean."""

import pytest
import torch

import sparq


def _fill(cache, gen, lens_prefill, steps):
    B, H, _, dh = cache.K.shape
    T = max(lens_prefill)
    k = torch.randn(B, H, T, dh, generator=gen)
    v = torch.randn(B, H, T, dh, generator=gen)
    cache.append(k, v, num_new=torch.tensor(lens_prefill))
    rows_v = [v[b, :, :n] for b, n in enumerate(lens_prefill)]
    rows_k = [k[b, :, :n] for b, n in enumerate(lens_prefill)]
    for _ in range(steps):
        k1 = torch.randn(B, H, 1, dh, generator=gen)
        v1 = torch.randn(B, H, 1, dh, generator=gen)
        cache.append(k1, v1)
        rows_v = [torch.cat([rv, v1[b]], 1) for b, rv in enumerate(rows_v)]
        rows_k = [torch.cat([rk, k1[b]], 1) for b, rk in enumerate(rows_k)]
    return rows_k, rows_v


@pytest.mark.parametrize("k_once", [False, True])
def test_appends_keep_invariants(k_once):
    gen = torch.Generator().manual_seed(0)
    cache = sparq.SparQCache(3, 2, 40, 16, k_once=k_once)
    rows_k, rows_v = _fill(cache, gen, [7, 3, 11], steps=5)
    assert cache.seq_lens.tolist() == [12, 8, 16]
    for b, (rk, rv) in enumerate(zip(rows_k, rows_v)):
        n = rk.shape[1]
        torch.testing.assert_close(cache.K[b, :, :n], rk, atol=0, rtol=0)
        torch.testing.assert_close(cache.V[b, :, :n], rv, atol=0, rtol=0)
        # fp32 running mean vs a fresh mean: different summation order only
        torch.testing.assert_close(cache.v_mean[b], rv.mean(1), atol=1e-6, rtol=1e-5)
        assert (cache.K[b, :, n:] == 0).all()  # padding untouched
    if k_once:
        assert cache.K_t is None
    else:
        assert cache.K_t.is_contiguous()
        assert torch.equal(cache.K_t, cache.K.transpose(-1, -2))


def test_attend_equals_dense_at_full_budget():
    gen = torch.Generator().manual_seed(1)
    cache = sparq.SparQCache(2, 2, 32, 64)
    rows_k, rows_v = _fill(cache, gen, [9, 4], steps=3)
    q = torch.randn(2, 4, 1, 64, generator=gen)
    y = cache.attend(q, r=64, k=32, reallocation=True)
    for b in range(2):
        K = rows_k[b].repeat_interleave(2, 0)
        V = rows_v[b].repeat_interleave(2, 0)
        ref = torch.softmax(q[b] @ K.transpose(-1, -2) / 8.0, -1) @ V
        torch.testing.assert_close(y[b], ref, atol=1e-5, rtol=1e-5)


def test_k_once_matches_k_twice():
    gen = torch.Generator().manual_seed(2)
    a = sparq.SparQCache(2, 1, 30, 32)
    b = sparq.SparQCache(2, 1, 30, 32, k_once=True)
    _fill(a, gen, [10, 6], 2)
    gen = torch.Generator().manual_seed(2)
    _fill(b, gen, [10, 6], 2)
    q = torch.randn(2, 2, 1, 32)
    assert torch.equal(a.attend(q, r=4, k=5), b.attend(q, r=4, k=5))


def test_overflow_and_bad_shapes_raise():
    cache = sparq.SparQCache(1, 1, 4, 8)
    with pytest.raises(ValueError, match="max_len=4"):
        cache.append(torch.zeros(1, 1, 5, 8), torch.zeros(1, 1, 5, 8))
    with pytest.raises(ValueError, match="shape"):
        cache.append(torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 1, 8))
    with pytest.raises(ValueError, match="max_len"):
        sparq.SparQCache(1, 1, 0, 8)
    cache.append(torch.ones(1, 1, 2, 8), torch.ones(1, 1, 2, 8))
    cache.reset()
    assert cache.seq_lens.tolist() == [0]
