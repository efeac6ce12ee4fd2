"""Skinny GEMMs for the end-to-end benchmark model: ``y = x @ W.T (+ res)`` with few rows.

At decode time every projection multiplies a handful of token rows (the batch, 16 in the
end-to-end case) by a large weight matrix, so each GEMM is bound by reading the weights once
(``N * K * 2`` bytes in bf16). This module has one Triton kernel for that case (all rows of ``x``
in one tile, one program per ``BLOCK_N`` output columns streaming over K, fp32 accumulation, the
residual add in the epilogue), a pure-torch reference, and :func:`tune_skinny`, which times a
small set of tile configurations against cuBLAS (``torch.mm`` / ``torch.addmm``) on the actual
weights and keeps cuBLAS wherever no configuration beats it. The model calls :class:`SkinnyMM`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

# (BLOCK_N, BLOCK_K, num_warps, num_stages): narrow column blocks give many programs for the
# N = 4096 projections; deep pipelines keep enough weight bytes in flight per SM
CONFIGS: tuple[tuple[int, int, int, int], ...] = (
    (16, 256, 4, 4),
    (16, 512, 4, 3),
    (16, 128, 2, 6),
    (32, 256, 4, 4),
    (32, 128, 4, 6),
    (32, 512, 8, 3),
    (64, 128, 4, 4),
    (64, 256, 8, 4),
)


@triton.jit
def _skinny_mm_kernel(
    x_ptr, w_ptr, r_ptr, y_ptr, M, N, K, sxm, swn, swk, srm, sym,
    HAS_RES: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Program n: ``y[:, n*BN:(n+1)*BN] = x @ W[n*BN:(n+1)*BN, :].T (+ res)`` over all M <=
    BLOCK_M rows, fp32 accumulation, stored in y's dtype (x (M, K) row-major, W (N, K) with
    strides (swn, swk), so either layout of the weights)."""
    pid = tl.program_id(0)
    rm = tl.arange(0, BLOCK_M)
    rn = (pid * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    rk = tl.arange(0, BLOCK_K)
    mm = rm < M
    mn = rn < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        mk = kk < K
        a = tl.load(x_ptr + rm[:, None] * sxm + kk[None, :], mask=mm[:, None] & mk[None, :],
                    other=0.0)  # fmt: skip
        b = tl.load(w_ptr + kk[:, None] * swk + rn[None, :] * swn, mask=mk[:, None] & mn[None, :],
                    other=0.0)  # fmt: skip
        acc = tl.dot(a, b, acc)
    out = mm[:, None] & mn[None, :]
    if HAS_RES:
        acc += tl.load(r_ptr + rm[:, None] * srm + rn[None, :], mask=out, other=0.0).to(tl.float32)
    tl.store(y_ptr + rm[:, None] * sym + rn[None, :], acc.to(y_ptr.dtype.element_ty), mask=out)


def skinny_mm(
    x: torch.Tensor, w: torch.Tensor, res: torch.Tensor | None = None,
    config: tuple[int, int, int, int] = CONFIGS[0],
) -> torch.Tensor:  # fmt: skip
    """``x @ w.T (+ res)`` with the Triton kernel.

    Args:
        x: (M, K) activations, bf16/fp16, row-major (stride 1 along K), M <= 64.
        w: (N, K) weights of x's dtype, any strides (the model stores them either way).
        res: optional (M, N) residual added in fp32 before the single rounding (as ``addmm``).
        config: (BLOCK_N, BLOCK_K, num_warps, num_stages), one of :data:`CONFIGS` or any other.

    Returns:
        (M, N) tensor of x's dtype.
    """
    M, K = x.shape
    N, K2 = w.shape
    if K2 != K:
        raise ValueError(f"x is (M, {K}) but w is ({N}, {K2}): the inner dimensions must match")
    if M > 64:
        raise ValueError(f"skinny_mm is for at most 64 rows, got {M}: use torch.mm")
    if x.stride(1) != 1:
        x = x.contiguous()
    y = torch.empty(M, N, device=x.device, dtype=x.dtype)
    if res is not None and res.stride(1) != 1:
        res = res.contiguous()
    bn, bk, warps, stages = config
    _skinny_mm_kernel[(triton.cdiv(N, bn),)](
        x, w, res if res is not None else y, y, M, N, K, x.stride(0), w.stride(0), w.stride(1),
        res.stride(0) if res is not None else 0, y.stride(0), HAS_RES=res is not None,
        BLOCK_M=max(16, triton.next_power_of_2(M)), BLOCK_N=bn, BLOCK_K=bk,
        num_warps=warps, num_stages=stages,
    )  # fmt: skip
    return y


def skinny_mm_reference(
    x: torch.Tensor, w: torch.Tensor, res: torch.Tensor | None = None
) -> torch.Tensor:
    """Pure-torch reference of :func:`skinny_mm`: fp32 product (plus residual), one rounding."""
    y = x.float() @ w.float().T
    if res is not None:
        y = y + res.float()
    return y.to(x.dtype)


class SkinnyMM:
    """``x @ W.T (+ res)`` per weight shape with the configuration :func:`tune_skinny` chose
    (``None``: cuBLAS). ``choice`` maps ``(N, K, has_res)`` to a config or ``None``."""

    def __init__(self, choice: dict[tuple[int, int, bool], tuple[int, int, int, int] | None]):
        self.choice = dict(choice)

    def __call__(self, x: torch.Tensor, w: torch.Tensor, res: torch.Tensor | None = None):
        cfg = self.choice.get((w.shape[0], w.shape[1], res is not None))
        if cfg is None:
            return x @ w.T if res is None else torch.addmm(res, x, w.T)
        return skinny_mm(x, w, res, cfg)


def tune_skinny(
    problems: Sequence[tuple[torch.Tensor, torch.Tensor, bool]],
    configs: Sequence[tuple[int, int, int, int]] = CONFIGS,
    reps: int = 20,
) -> tuple[SkinnyMM, list[dict]]:
    """Choose, per weight, the fastest of cuBLAS and the Triton configurations (CUDA only).

    Args:
        problems: (x, W, has_res) per distinct projection: activations (M, K), weights (N, K).
        configs: tile configurations to try.
        reps: timed calls per candidate. Every call reads a different one of several copies of
            the weights when they fit in L2 twice over, so no candidate is timed from cache.

    Returns:
        The :class:`SkinnyMM` and one row per problem: the times in microseconds per candidate
        (``"cublas"`` and each config), the choice and its speed-up over cuBLAS. A config whose
        output differs from the fp32 reference by more than the bf16 rounding plus an fp32
        reordering error is left out (recorded as ``"wrong"``).
    """
    from _graphs import graph_replay, seconds_per_call  # the benchmarks' own helpers

    choice: dict[tuple[int, int, bool], tuple[int, int, int, int] | None] = {}
    rows = []
    for x, w, has_res in problems:
        M, N = x.shape[0], w.shape[0]
        copies = [w] + [w.clone() for _ in range(max(0, -(-(200 << 20) // w.nbytes) - 1))]
        res = torch.randn(M, N, device=x.device, dtype=x.dtype) if has_res else None
        ref = skinny_mm_reference(x, w, res).float()
        cands = {"cublas": None, **{"x".join(map(str, c)): c for c in configs}}
        times, row = {}, {"N": N, "K": w.shape[1], "M": M, "residual": has_res}
        for name, cfg in cands.items():
            fn = SkinnyMM({(N, w.shape[1], has_res): cfg})
            try:
                y = fn(x, w, res).float()
            except Exception as e:  # a config that does not compile on this GPU: skip it
                row[name] = f"failed: {type(e).__name__}"
                continue
            # bf16 output rounding (2^-8 relative) plus fp32 accumulation order: 1e-2 normwise
            err = ((y - ref).norm() / ref.norm().clamp_min(1e-30)).item()
            if not err <= 1e-2:
                row[name] = f"wrong ({err:.2g})"
                continue

            # one CUDA graph of ``reps`` calls: the kernels' device time, not Python launches
            def calls(fn=fn, x=x, ws=copies, res=res):
                for i in range(reps):
                    fn(x, ws[i % len(ws)], res)

            times[name] = seconds_per_call(graph_replay(calls), 5) * 1e6 / reps
            row[name] = round(times[name], 2)
        best = min(times, key=times.get)
        choice[(N, w.shape[1], has_res)] = cands[best]
        row["choice"] = best
        row["speedup_vs_cublas"] = round(times["cublas"] / times[best], 3)
        row["gb_s"] = round(w.nbytes / times[best] / 1e3, 1)
        rows.append(row)
        del copies
    return SkinnyMM(choice), rows
