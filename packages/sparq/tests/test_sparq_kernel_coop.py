"""The row-cooperative kernel (``coop_attention``): the whole decode step in one launch.

Runs on CPU under ``TRITON_INTERPRET=1`` (one launch per phase: the interpreter runs programs one
after another, so spin barriers cannot work there) or on CUDA (also one launch with barriers).
The keys are those of the separate kernels bit for bit, so the selected positions must equal
``select_topk``'s on the same logits, in the same order, ties included; the output must be within
the half-precision bound of an fp32 reference over those positions.
"""

from __future__ import annotations

import os

import pytest
import torch

triton = pytest.importorskip("triton")

INTERP = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cpu" if INTERP else ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(
    DEVICE is None, reason="needs CUDA or TRITON_INTERPRET=1 set before Python starts"
)

from sparq import sparq_attention_reference  # noqa: E402
from sparq.kernels import (  # noqa: E402
    approx_logits,
    prepare_query_fused,
    select_topk,
    sparq_attention_triton,
    sparse_attention_reference,
)
from sparq.kernels._coop import coop_attention, coop_parts, coop_supported  # noqa: E402

DT = torch.float16 if DEVICE == "cpu" else torch.bfloat16


def _inputs(B, Hq, Hkv, S, dh, seed, tie=False):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, 1, dh, generator=g).to(DT)
    K = torch.randn(B, Hkv, S, dh, generator=g)
    if tie:  # a run of identical keys across chunk borders: the tie rule decides the winners
        K[:, :, S // 3 : 2 * S // 3] = K[:, :, S // 3 : S // 3 + 1]
    K = K.to(DT)
    V = torch.randn(B, Hkv, S, dh, generator=g).to(DT)
    return [x.to(DEVICE) for x in (q, K, V, K.transpose(-1, -2).contiguous())]


def _check(B, Hq, Hkv, S, dh, r, k, window, sinks, lens, realloc, seed, tie=False, **kw):
    q, K, V, Kt = _inputs(B, Hq, Hkv, S, dh, seed, tie)
    sl = torch.tensor(lens if lens else [S] * B, dtype=torch.int64, device=DEVICE)
    vm = None
    if realloc:
        valid = (torch.arange(S, device=DEVICE)[None] < sl[:, None]).float()
        vm = (valid[:, None, :, None] * V.float()).sum(2) / valid.sum(-1)[:, None, None]
    probe = {}
    y = coop_attention(q, K, V, Kt, sl, r=r, k=k, local_window=window, sink_tokens=sinks,
                       scale=dh**-0.5, v_mean=vm, _probe=probe, **kw)  # fmt: skip
    # the selection of the separate kernels on the same logits (tile as the cooperative step 1)
    i1, qh = prepare_query_fused(q, Hkv, r, dh**-0.5, sort=True, num_warps=1)
    lg, tm, ts = approx_logits(Kt, i1, qh, sl, rows=True, tile=kw.get("tile", 1024))
    idx, alpha = select_topk(lg, tm, ts, sl, k, window, sinks)
    assert torch.equal(probe["idx"].cpu(), idx.reshape(B * Hkv, k).int().cpu())
    if realloc:
        got = probe["alpha"].sum(1)[:, : Hq // Hkv].reshape(B, Hq).cpu()
        torch.testing.assert_close(got, alpha.reshape(B, Hq).float().cpu(), rtol=1e-5, atol=1e-6)
    args = (q.cpu(), K.cpu(), V.cpu(), idx.cpu(), sl.cpu(), dh**-0.5)
    akw = {"alpha": alpha.reshape(B, Hq).cpu(), "v_mean": vm.cpu()} if realloc else {}
    y32 = sparse_attention_reference(*args, **akw).float()
    ylo = sparse_attention_reference(*args, **akw, compute_dtype=DT).float()
    # same rows, another summation order: at most twice the error of a half-precision torch
    # computation plus one half-precision ulp (2^-8) of the largest output
    bound = 2 * (ylo - y32).abs().max().item() + 2**-8 * y32.abs().max().item()
    yc = y.cpu().float()
    assert torch.isfinite(yc).all()
    assert (yc - y32).abs().max().item() <= bound
    return q, K, V, Kt, sl, vm, y


@pytest.mark.parametrize(
    ("B", "Hq", "Hkv", "S", "dh", "r", "k", "window", "sinks", "lens", "realloc", "kw"),
    [
        # GQA groups of 4, 3 programs per row (the last chunk partial), window and sinks
        (1, 8, 2, 300, 64, 8, 40, 5, 2, None, False, {"parts": 3}),
        # ragged batch with reallocation; 4 programs, one of them past the shorter row's end
        (2, 8, 2, 300, 32, 8, 40, 5, 2, [300, 123], True, {"parts": 4}),
        # one head per KV head (MHA), k of a third of the row, odd S
        (1, 4, 4, 257, 32, 4, 100, 0, 0, None, False, {"parts": 5}),
        # fewer valid positions than k in one row: every valid one is selected
        (2, 4, 1, 200, 32, 16, 90, 3, 1, [200, 70], True, {"parts": 2}),
    ],
)
def test_coop_matches_separate_kernels(B, Hq, Hkv, S, dh, r, k, window, sinks, lens, realloc,
                                       kw):  # fmt: skip
    _check(B, Hq, Hkv, S, dh, r, k, window, sinks, lens, realloc, seed=S + k,
           tile=64, key_block=32, block=16, **kw)  # fmt: skip


def test_coop_ties_go_to_the_lowest_positions_across_chunks():
    # 100 equal keys spread over three chunks, k cuts through them
    _check(1, 8, 2, 300, 32, 8, 60, 3, 1, None, False, seed=5, tie=True, parts=4, tile=64,
           key_block=32, block=16)  # fmt: skip


def test_coop_twice_same_result_and_reference():
    """The row counters are left at zero (a second call gives the same bits), and the output
    agrees with the pure-torch reference of the whole step."""
    q, K, V, Kt, sl, _, y = _check(1, 8, 2, 256, 32, 8, 32, 4, 1, None, False, seed=9, parts=4,
                                   tile=64, key_block=64, block=16)  # fmt: skip
    y2 = coop_attention(q, K, V, Kt, sl, r=8, k=32, local_window=4, sink_tokens=1,
                        scale=32**-0.5, parts=4, tile=64, key_block=64, block=16)  # fmt: skip
    assert torch.equal(y, y2)
    ref = sparq_attention_reference(q.float(), K.float(), V.float(), r=8, k=32, local_window=4,
                                    sink_tokens=1, reallocation=False)  # fmt: skip
    assert (y.float() - ref).abs().max().item() < 2e-2 * ref.abs().max().item()


def test_coop_rejects_bad_arguments():
    q, K, V, Kt = _inputs(1, 4, 2, 64, 32, 0)
    sl = torch.full((1,), 64, dtype=torch.int64, device=DEVICE)
    kw = {"r": 4, "local_window": 0, "sink_tokens": 0, "scale": 1.0}
    with pytest.raises(ValueError, match="1 <= k < S"):
        coop_attention(q, K, V, Kt, sl, k=64, **kw)
    with pytest.raises(ValueError, match="powers of two"):
        coop_attention(q, K, V, Kt, sl, k=8, tile=48, **kw)


def test_coop_plan():
    # K3 (B=1, Hkv=8, S=128k) on 132 multiprocessors: 16 programs per row; K2 (256 rows) does
    # not fit; k == S needs no selection
    assert coop_parts(8, 131072, 1024, 132) == 16
    assert coop_supported(1, 8, 131072, 8192)
    assert not coop_supported(32, 8, 32768, 2048)
    assert not coop_supported(1, 8, 4096, 4096)


def test_dispatch_falls_back_when_coop_does_not_fit():
    # 300 positions are one 1024-position tile: no second program, so "coop" runs the pipeline
    q, K, V, Kt = _inputs(1, 8, 2, 300, 32, 3)
    kw = {"r": 8, "k": 40, "local_window": 2, "sink_tokens": 1, "K_t": Kt, "dense_fallback": False}
    y = sparq_attention_triton(q, K, V, selection="coop", **kw)
    assert torch.equal(y, sparq_attention_triton(q, K, V, selection="triton", **kw))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_coop_spin_equals_phase_launches_long_rows_and_graph():
    """On the GPU: one launch with barriers gives the bits of one launch per phase, on a row of
    64k positions, eagerly and replayed from a CUDA graph (twice: the counters reset)."""
    q, K, V, Kt, sl, vm, y = _check(1, 16, 4, 65536, 128, 16, 4096, 64, 4, None, True, seed=1)
    kw = {"r": 16, "k": 4096, "local_window": 64, "sink_tokens": 4, "scale": 128**-0.5,
          "v_mean": vm}  # fmt: skip
    y_split = coop_attention(q, K, V, Kt, sl, spin=False, **kw)
    assert torch.equal(y, y_split)
    out = torch.empty_like(y)
    g = torch.cuda.CUDAGraph()
    coop_attention(q, K, V, Kt, sl, out=out, **kw)
    with torch.cuda.graph(g):
        coop_attention(q, K, V, Kt, sl, out=out, **kw)
    for _ in range(2):
        out.zero_()
        g.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, y)
