"""Skinny GEMMs for the end-to-end benchmark model: ``y = x @ W.T (+ res)`` with few rows.

At decode time every projection multiplies a handful of token rows (the batch, 16 in the
end-to-end case) by a large weight matrix, so each GEMM is bound by reading the weights once
(``N * K * 2`` bytes in bf16). This module has one Triton kernel for that case (all rows of ``x``
in one tile, one program per ``BLOCK_N`` output columns streaming over K, fp32 accumulation),
with the residual add or SwiGLU (gate and up columns in one program) in its epilogue; a
pure-torch reference; and :func:`tune_skinny`, which times a small set of tile configurations
against cuBLAS (``torch.mm`` / ``torch.addmm``, then SwiGLU in torch) on the actual weights and
keeps cuBLAS wherever no configuration beats it. The model calls :class:`SkinnyMM`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

# (BLOCK_N, BLOCK_K, num_warps, num_stages): narrow column blocks give many programs for the
# N = 4096 projections, wide ones fewer, longer streams for the N >= 28672 ones; deep pipelines
# keep enough weight bytes in flight per SM. The H200 probe of 11:50 UTC (16 shapes, both
# weight layouts) had 16x128/2/6, 16x256/2/5, 32x256/4/4, 64x256/8/4 and 128x128/8/3 win at
# least one of the end-to-end model's weights; the other three came within 5 % of the winner on
# at least one
CONFIGS: tuple[tuple[int, int, int, int], ...] = (
    (16, 128, 2, 6),
    (16, 256, 2, 5),
    (32, 128, 4, 6),
    (32, 256, 4, 3),
    (32, 256, 4, 4),
    (64, 256, 8, 4),
    (64, 512, 8, 2),
    (128, 128, 8, 3),
)
# what the epilogue does: store x @ W.T (plus the residual), or, for W = [gate; up] (2F, K),
# store silu(x @ gate.T) * (x @ up.T), (M, F)
MODES = ("", "swiglu")


@triton.jit
def _skinny_mm_kernel(
    x_ptr, w_ptr, r_ptr, y_ptr, M, N, K, sxm, swn, swk, srm, sym,
    HAS_RES: tl.constexpr, SWIGLU: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Program n: ``y[:, n*BN:(n+1)*BN] = x @ W[n*BN:(n+1)*BN, :].T (+ res)`` over all M <=
    BLOCK_M rows, fp32 accumulation, stored in y's dtype (x (M, K) row-major, W with strides
    (swn, swk), so either layout of the weights). ``SWIGLU``: W is (2N, K) = [gate; up], each
    program also streams the matching up rows (W[N + n*BN ...]) into a second accumulator and
    stores silu(g) * u with the plain step's roundings (g, u and silu(g) to y's dtype)."""
    pid = tl.program_id(0)
    rm = tl.arange(0, BLOCK_M)
    rn = (pid * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    rk = tl.arange(0, BLOCK_K)
    mm = rm < M
    mn = rn < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_u = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        mk = kk < K
        a = tl.load(x_ptr + rm[:, None] * sxm + kk[None, :], mask=mm[:, None] & mk[None, :],
                    other=0.0)  # fmt: skip
        wp = w_ptr + kk[:, None] * swk + rn[None, :] * swn
        wm = mk[:, None] & mn[None, :]
        acc = tl.dot(a, tl.load(wp, mask=wm, other=0.0), acc)
        if SWIGLU:
            acc_u = tl.dot(a, tl.load(wp + N * swn, mask=wm, other=0.0), acc_u)
    out = mm[:, None] & mn[None, :]
    if SWIGLU:
        g = acc.to(y_ptr.dtype.element_ty).to(tl.float32)
        g = (g / (1.0 + tl.exp(-g))).to(y_ptr.dtype.element_ty).to(tl.float32)
        acc = g * acc_u.to(y_ptr.dtype.element_ty).to(tl.float32)
    if HAS_RES:
        acc += tl.load(r_ptr + rm[:, None] * srm + rn[None, :], mask=out, other=0.0).to(tl.float32)
    tl.store(y_ptr + rm[:, None] * sym + rn[None, :], acc.to(y_ptr.dtype.element_ty), mask=out)


def _check(x: torch.Tensor, w: torch.Tensor, res: torch.Tensor | None, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x is {tuple(x.shape)} and w {tuple(w.shape)}: the inner dimensions "
                         "must match")  # fmt: skip
    if mode == "swiglu" and (w.shape[0] % 2 or res is not None):
        raise ValueError("mode='swiglu' needs w = [gate; up] with an even number of rows and "
                         "no residual")  # fmt: skip


def skinny_mm(
    x: torch.Tensor, w: torch.Tensor, res: torch.Tensor | None = None,
    config: tuple[int, int, int, int] = CONFIGS[0], mode: str = "",
) -> torch.Tensor:  # fmt: skip
    """``x @ w.T (+ res)``, or SwiGLU of it, with the Triton kernel.

    Args:
        x: (M, K) activations, bf16/fp16, M <= 64.
        w: (N, K) weights of x's dtype, any strides (the model stores them either way).
        res: optional (M, N) residual added in fp32 before the single rounding (as ``addmm``).
        config: (BLOCK_N, BLOCK_K, num_warps, num_stages), one of :data:`CONFIGS` or any other.
        mode: ``""`` or ``"swiglu"``: w is (2F, K) = [gate; up] and the result is
            ``silu(x @ gate.T) * (x @ up.T)``, (M, F), rounded as the plain step rounds it.

    Returns:
        (M, N) (or (M, N / 2) for ``"swiglu"``) tensor of x's dtype.
    """
    _check(x, w, res, mode)
    M, K = x.shape
    N = w.shape[0] // (2 if mode == "swiglu" else 1)
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
        SWIGLU=mode == "swiglu", BLOCK_M=max(16, triton.next_power_of_2(M)), BLOCK_N=bn,
        BLOCK_K=bk, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    return y


def _swiglu(y: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` of ``y = [gate | up]`` in torch's ops (each rounded to y's dtype)."""
    g, u = y.chunk(2, dim=-1)
    return F.silu(g) * u


def skinny_mm_reference(
    x: torch.Tensor, w: torch.Tensor, res: torch.Tensor | None = None, mode: str = ""
) -> torch.Tensor:
    """Pure-torch :func:`skinny_mm`: an fp32 product plus the residual, rounded once; for
    ``"swiglu"`` then ``F.silu(gate) * up`` in x's dtype."""
    _check(x, w, res, mode)
    y = x.float() @ w.float().T
    if res is not None:
        y = y + res.float()
    y = y.to(x.dtype)
    return _swiglu(y) if mode == "swiglu" else y


Choice = dict[tuple[int, int, bool, str], "tuple[int, int, int, int] | None"]


class SkinnyMM:
    """``x @ W.T (+ res)`` (or its SwiGLU) per weight shape, residual and mode with the
    configuration :func:`tune_skinny` chose; ``None`` or a missing key: cuBLAS (``mm`` /
    ``addmm``, then SwiGLU in torch). ``choice`` maps ``(N, K, has_res, mode)`` to a config or
    ``None``."""

    def __init__(self, choice: Choice):
        self.choice = dict(choice)

    def __call__(
        self, x: torch.Tensor, w: torch.Tensor, res: torch.Tensor | None = None, mode: str = ""
    ) -> torch.Tensor:
        cfg = self.choice.get((w.shape[0], w.shape[1], res is not None, mode))
        if cfg is not None:
            return skinny_mm(x, w, res, cfg, mode)
        _check(x, w, res, mode)
        y = x @ w.T if res is None else torch.addmm(res, x, w.T)
        return _swiglu(y) if mode == "swiglu" else y


def tune_skinny(
    problems: Sequence[tuple[torch.Tensor, torch.Tensor, bool, str]],
    configs: Sequence[tuple[int, int, int, int]] = CONFIGS,
    reps: int = 20,
) -> tuple[SkinnyMM, list[dict]]:
    """Choose, per weight, the fastest of cuBLAS and the Triton configurations (CUDA only).

    Args:
        problems: (x, W, has_res, mode) per distinct projection: activations (M, K), weights
            (N, K), see :func:`skinny_mm`.
        configs: tile configurations to try.
        reps: timed calls per candidate. Every call reads a different one of several copies of
            the weights when they fit in L2 twice over, so no candidate is timed from cache.

    Returns:
        The :class:`SkinnyMM` and one row per problem: the times in microseconds per candidate
        (``"cublas"``: cuBLAS, then SwiGLU in torch; and each config), the choice and its
        speed-up over cuBLAS. A config whose output differs from the fp32 reference by more
        than the bf16 rounding plus an fp32 reordering error is left out (recorded as
        ``"wrong"``).
    """
    from _graphs import graph_replay, seconds_per_call  # the benchmarks' own helpers

    choice: Choice = {}
    rows = []
    for x, w, has_res, mode in problems:
        M, N = x.shape[0], w.shape[0]
        copies = [w] + [w.clone() for _ in range(max(0, -(-(200 << 20) // w.nbytes) - 1))]
        res = torch.randn(M, N, device=x.device, dtype=x.dtype) if has_res else None
        ref = skinny_mm_reference(x, w, res, mode).float()
        cands = {"cublas": None, **{"x".join(map(str, c)): c for c in configs}}
        key = (N, w.shape[1], has_res, mode)
        times, row = {}, {"N": N, "K": w.shape[1], "M": M, "residual": has_res, "mode": mode}
        for name, cfg in cands.items():
            fn = SkinnyMM({key: cfg})
            try:
                y = fn(x, w, res, mode).float()
            except Exception as e:  # a config that does not compile on this GPU: skip it
                row[name] = f"failed: {type(e).__name__}"
                continue
            # bf16 output rounding (2^-8 relative) plus fp32 accumulation order: 1e-2 normwise
            err = ((y - ref).norm() / ref.norm().clamp_min(1e-30)).item()
            if not err <= 1e-2:
                row[name] = f"wrong ({err:.2g})"
                continue

            # one CUDA graph of ``reps`` calls: the kernels' device time, not Python launches
            def calls(fn=fn, x=x, ws=copies, res=res, mode=mode):
                for i in range(reps):
                    fn(x, ws[i % len(ws)], res, mode)

            times[name] = seconds_per_call(graph_replay(calls), 5) * 1e6 / reps
            row[name] = round(times[name], 2)
        best = min(times, key=times.get)
        choice[key] = cands[best]
        row["choice"] = best
        row["speedup_vs_cublas"] = round(times["cublas"] / times[best], 3)
        row["gb_s"] = round(w.nbytes / times[best] / 1e3, 1)
        rows.append(row)
        del copies
    return SkinnyMM(choice), rows
