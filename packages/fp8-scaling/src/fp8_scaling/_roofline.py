"""A roofline model of FP8 vs bf16 linear layers (forward + backward) on Hopper-class GPUs.

Time of the bf16 layer: three GEMMs of ``2 M K N`` FLOPs at the measured bf16 rate. Time of the
FP8 layer: the same GEMMs at the measured FP8 rate plus the casts, which are memory-bound: for
each of X (M, K), W (N, K) and G (M, N) one amax read and one read + two 1-byte writes, plus a
fixed per-kernel launch cost; the host time of a call (which the GPU hides only behind long GEMMs)
bounds the FP8 time from below. Rates come from our H200 measurements (benchmarks/results).
"""

from __future__ import annotations

import torch

__all__ = ["predict_speedup"]

# Measured on one H200 (torch 2.11, cuBLAS): effective dense rates at large sizes (FLOP/s), the
# size (FLOPs of one GEMM) where half of that rate is reached, memory bandwidth (B/s) and a fixed
# per-kernel overhead (s). Small GEMMs are modelled as rate * f / (f + f_half).
_H200 = {
    "bf16_rate": 7.0e14,
    "fp8_rate": 1.25e15,
    "bf16_half": 2.0e9,
    "fp8_half": 4.0e9,
    "bandwidth": 3.6e12,
    "kernel_overhead": 6e-6,
    "n_cast_kernels": 6,
    # host time of one eager/compiled fwd+bwd call of Float8Linear (custom-op dispatch and
    # Triton launches); the GPU hides it only behind longer GEMMs. Measured: 2.4 ms at 4096^3.
    "host_overhead": 2.0e-3,
}


def predict_speedup(
    m: int, k: int, n: int, device: torch.device | None = None, bytes_per_elem: int = 2
) -> float:
    """Predicted ``t_bf16 / t_fp8`` of one linear layer's forward+backward at (M, K, N).

    Args:
        m: tokens (rows of the input); k: in_features; n: out_features.
        device: the GPU (only Hopper-class constants are modelled; others use the same table).
        bytes_per_elem: bytes per element of the high-precision tensors (2 for bf16).

    Returns:
        Predicted speed-up; > 1 means FP8 is predicted faster. Shapes whose dimensions are not
        multiples of 16 return 0 (FP8 GEMMs cannot run them without padding).
    """
    if min(m, k, n) <= 0 or k % 16 or n % 16 or m % 16:
        return 0.0
    c = _H200
    f = 2.0 * m * k * n

    def gemm(rate: float, half: float) -> float:
        return f / (rate * f / (f + half))

    t_bf16 = 3 * gemm(c["bf16_rate"], c["bf16_half"])
    elems = m * k + n * k + m * n
    cast_bytes = elems * (2 * bytes_per_elem + 2)
    t_gpu = (
        3 * gemm(c["fp8_rate"], c["fp8_half"])
        + cast_bytes / c["bandwidth"]
        + c["n_cast_kernels"] * c["kernel_overhead"]
    )
    t_fp8 = max(t_gpu, c["host_overhead"])
    return t_bf16 / t_fp8
