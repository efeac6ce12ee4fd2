"""``_positions`` (the lean position vector of the selection kernels) compiles and equals
``arange`` whether its runtime operand arrives as a tensor or, as Triton passes an integer
argument equal to 1, as a compile-time constant (CPU interpreter or CUDA)."""

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

from sparq.kernels._select_sample import _positions  # noqa: E402


@triton.jit
def _const_kernel(out_ptr, RT: tl.constexpr, CH: tl.constexpr, LEAN: tl.constexpr):
    tl.store(out_ptr + tl.arange(0, CH), _positions(CH, RT, LEAN))


@triton.jit
def _runtime_kernel(out_ptr, rt, CH: tl.constexpr, LEAN: tl.constexpr):
    tl.store(out_ptr + tl.arange(0, CH), _positions(CH, rt, LEAN))


@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize("rt", [1, 7])
def test_positions_constant_and_runtime_operand(lean, rt):
    ch = 16
    want = torch.arange(ch, dtype=torch.int32)
    for kernel in (_const_kernel, _runtime_kernel):
        out = torch.full((ch,), -1, dtype=torch.int32, device=DEVICE)
        kernel[(1,)](out, rt, CH=ch, LEAN=lean)
        assert torch.equal(out.cpu(), want), (kernel.__name__, lean, rt)
