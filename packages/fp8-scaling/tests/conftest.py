import os

import pytest
import torch


def sqnr_db(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.detach().double(), ref.detach().double()
    return float(20 * torch.log10(ref.norm() / (x - ref).norm()))


@pytest.fixture
def sqnr():
    return sqnr_db


@pytest.fixture
def triton_interpret():
    """Skip unless Triton kernels can run here (TRITON_INTERPRET=1 on CPU, or a CUDA GPU)."""
    from fp8_scaling._kernels import HAS_TRITON

    if not HAS_TRITON:
        pytest.skip("triton is not installed")
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("set TRITON_INTERPRET=1 before starting Python to run Triton kernels on CPU")
    return True
