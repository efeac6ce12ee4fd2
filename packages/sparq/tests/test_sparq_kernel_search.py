"""The radix-256 histogram and packed radix-4 rank searches vs ``torch.topk`` on int32 keys
(CPU interpreter or CUDA)."""

from __future__ import annotations

import os

import pytest
import torch

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

INTERP = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cpu" if INTERP else ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(
    DEVICE is None, reason="needs CUDA or TRITON_INTERPRET=1 set before Python starts"
)

from sparq.kernels._search import _rank_threshold4, _rank_threshold_h256  # noqa: E402
from sparq.kernels._select_sample import _rank_threshold  # noqa: E402


@triton.jit
def _both_kernel(u_ptr, rank_ptr, out_ptr, N: tl.constexpr):
    u = tl.load(u_ptr + tl.arange(0, N))
    rank = tl.load(rank_ptr)
    tl.store(out_ptr, _rank_threshold_h256(u, rank))
    tl.store(out_ptr + 1, _rank_threshold(u, rank))
    tl.store(out_ptr + 2, _rank_threshold4(u, rank))


@pytest.mark.parametrize("case", ["wide", "narrow", "ties", "negative", "short"])
def test_histogram_search_is_the_rank_th_largest(case):
    g = torch.Generator().manual_seed(len(case))
    n = 256
    if case == "wide":  # the whole int32 range
        u = torch.randint(-(2**31), 2**31 - 1, (n,), generator=g, dtype=torch.int64)
    elif case == "narrow":  # keys sharing their top three bytes: the last pass decides
        u = 0x3F800000 + torch.randint(0, 200, (n,), generator=g)
    elif case == "ties":  # few distinct values
        u = torch.randint(0, 5, (n,), generator=g) * 1000
    elif case == "negative":
        u = -torch.randint(1, 2**20, (n,), generator=g)
    else:  # padding keys (-2**31) and a rank beyond the live keys
        u = torch.full((n,), -(2**31))
        u[:10] = torch.arange(10)
    u = u.to(torch.int32)
    for rank in (1, 7, 100, n) if case != "short" else (3, 10, 11):
        out = torch.zeros(3, dtype=torch.int32, device=DEVICE)
        r = torch.tensor([rank], dtype=torch.int32, device=DEVICE)
        _both_kernel[(1,)](u.to(DEVICE), r, out, N=n)
        want = int(torch.topk(u.long(), rank).values[-1])
        assert out.tolist() == [want, want, want], (case, rank)
