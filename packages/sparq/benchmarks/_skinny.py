"""Skinny GEMMs for the end-to-end benchmark model: ``y = x @ W.T (+ res)`` with few rows.

At decode time every projection multiplies a handful of token rows (the batch, 16 in the
end-to-end case) by a large weight matrix, so each GEMM is bound by reading the weights once
(``N * K * 2`` bytes in bf16). This module has one Triton kernel for that case (all rows of ``x``
in one tile, one program per ``BLOCK_N`` output columns streaming over K, fp32 accumulation).
The small operations around the projections ride in its epilogue: the residual add, SwiGLU
(gate and up columns in one program), and the RMSNorm of the input, applied as a per-row scale
of the product from sums of squares that the projection producing x wrote in its own epilogue.
A layer thus runs 4 GEMMs, the rotary/cache kernel and attention, and no norm or activation
kernel. Also: a pure-torch reference, and :func:`tune_skinny`, which times a small set of tile
configurations against the same maths in torch (norm, cuBLAS ``mm`` / ``addmm``, SwiGLU) on the
actual weights and keeps torch wherever no configuration beats it. The model calls
:class:`SkinnyMM`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

# (BLOCK_N, BLOCK_K, num_warps, num_stages): narrow column blocks give many programs for the
# N = 4096 projections, wide ones fewer, longer streams for the N >= 28672 ones; deep pipelines
# keep enough weight bytes in flight per SM (the H200 probe of 12:12 UTC: each of these won at
# least one of the end-to-end model's weights in one layout)
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


@triton.jit
def _skinny_mm_kernel(
    x_ptr, w_ptr, r_ptr, y_ptr, ssi_ptr, sso_ptr, M, N, K, NSS, sxm, swn, swk, srm, sym, eps,
    HAS_RES: tl.constexpr, SWIGLU: tl.constexpr, RMS: tl.constexpr, SS_OUT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SS_BLOCK: tl.constexpr,
):  # fmt: skip
    """Program n: ``y[:, n*BN:(n+1)*BN] = x @ W[n*BN:(n+1)*BN, :].T (+ res)`` over all M <=
    BLOCK_M rows, fp32 accumulation, stored in y's dtype (x (M, K) row-major, W with strides
    (swn, swk), so either layout of the weights).

    ``RMS``: x is normed on the way: ``ssi`` holds (NSS, BLOCK_M) partial sums of squares of
    x's rows, and the fp32 product is scaled by rsqrt(sum / K + eps) per row (= RMSNorm of x,
    which is per-row linear). ``SWIGLU``: W is (2N, K) = [gate; up]; the program also streams
    the matching up rows into a second accumulator and stores silu(g) * u with the plain
    step's roundings (g, u and silu(g) to y's dtype). ``SS_OUT``: also writes the sums of
    squares of its stored (rounded) outputs per row to ``sso[n, :]``, which the next
    projection's ``RMS`` reads, so no separate norm kernel runs in between."""
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
    if RMS:
        # the producer's partial sums, SS_BLOCK rows per load (one load for up to 256 programs)
        ss = tl.zeros((BLOCK_M,), dtype=tl.float32)
        rp = tl.arange(0, SS_BLOCK)
        for i in range(0, NSS, SS_BLOCK):
            part = tl.load(ssi_ptr + (i + rp)[:, None] * BLOCK_M + rm[None, :],
                           mask=(i + rp < NSS)[:, None], other=0.0)  # fmt: skip
            ss += tl.sum(part, axis=0)
        scale = tl.rsqrt(ss / K + eps)[:, None]
        acc = acc * scale
        acc_u = acc_u * scale
    out = mm[:, None] & mn[None, :]
    if SWIGLU:
        g = acc.to(y_ptr.dtype.element_ty).to(tl.float32)
        g = (g / (1.0 + tl.exp(-g))).to(y_ptr.dtype.element_ty).to(tl.float32)
        acc = g * acc_u.to(y_ptr.dtype.element_ty).to(tl.float32)
    if HAS_RES:
        acc += tl.load(r_ptr + rm[:, None] * srm + rn[None, :], mask=out, other=0.0).to(tl.float32)
    y = acc.to(y_ptr.dtype.element_ty)
    tl.store(y_ptr + rm[:, None] * sym + rn[None, :], y, mask=out)
    if SS_OUT:
        yf = tl.where(out, y.to(tl.float32), 0.0)
        tl.store(sso_ptr + pid * BLOCK_M + rm, tl.sum(yf * yf, axis=1))


def row_sumsq(x: torch.Tensor) -> torch.Tensor:
    """(1, BLOCK_M) fp32 sums of squares of x's (M, K) rows, zero-padded to the kernel's row
    block: the ``rms`` input of :func:`skinny_mm` for an x no projection produced."""
    out = torch.zeros(1, _block_m(x.shape[0]), device=x.device, dtype=torch.float32)
    out[0, : x.shape[0]] = x.float().square().sum(-1)
    return out


def _block_m(M: int) -> int:
    return max(16, triton.next_power_of_2(M))


def _check(x, w, res, swiglu, rms) -> None:
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x is {tuple(x.shape)} and w {tuple(w.shape)}: the inner dimensions "
                         "must match")  # fmt: skip
    if swiglu and (w.shape[0] % 2 or res is not None):
        raise ValueError("swiglu=True needs w = [gate; up] with an even number of rows and no "
                         "residual")  # fmt: skip
    if rms is not None and (rms.dtype != torch.float32 or rms.dim() != 2
                            or rms.shape[1] != _block_m(x.shape[0])):  # fmt: skip
        raise ValueError(f"rms must be the (P, {_block_m(x.shape[0])}) float32 partial sums of "
                         "squares of x's rows (row_sumsq, or ss=True of the projection that "
                         "produced x)")  # fmt: skip


def skinny_mm(
    x: torch.Tensor, w: torch.Tensor, res: torch.Tensor | None = None,
    config: tuple[int, int, int, int] = CONFIGS[0], *, swiglu: bool = False,
    rms: torch.Tensor | None = None, ss: bool = False,
):  # fmt: skip
    """``norm(x) @ w.T (+ res)``, or SwiGLU of it, with the Triton kernel.

    Args:
        x: (M, K) activations, bf16/fp16, M <= 64.
        w: (N, K) weights of x's dtype, any strides (the model stores them either way).
        res: optional (M, N) residual added in fp32 before the single rounding (as ``addmm``).
        config: (BLOCK_N, BLOCK_K, num_warps, num_stages), one of :data:`CONFIGS` or any other.
        swiglu: w is (2F, K) = [gate; up] and the result is ``silu(x @ gate.T) * (x @ up.T)``,
            (M, F), rounded as the plain step rounds it.
        rms: optional (P, BLOCK_M) fp32 partial sums of squares of x's rows (:func:`row_sumsq`
            or ``ss=True`` of the projection that produced x): x is RMSNorm-ed (no weight, eps =
            the dtype's eps) by scaling the fp32 product per row.
        ss: also return the (programs, BLOCK_M) partial sums of squares of the result's rows.

    Returns:
        y, (M, N) (or (M, N / 2) with ``swiglu``) of x's dtype; with ``ss``, ``(y, sums)``.
    """
    _check(x, w, res, swiglu, rms)
    M, K = x.shape
    N = w.shape[0] // (2 if swiglu else 1)
    if M > 64:
        raise ValueError(f"skinny_mm is for at most 64 rows, got {M}: use torch.mm")
    if x.stride(1) != 1:
        x = x.contiguous()
    y = torch.empty(M, N, device=x.device, dtype=x.dtype)
    if res is not None and res.stride(1) != 1:
        res = res.contiguous()
    bn, bk, warps, stages = config
    grid = triton.cdiv(N, bn)
    sso = torch.empty(grid, _block_m(M), device=x.device, dtype=torch.float32) if ss else y
    rms_c = rms.contiguous() if rms is not None else y
    _skinny_mm_kernel[(grid,)](
        x, w, res if res is not None else y, y, rms_c, sso, M, N, K,
        rms.shape[0] if rms is not None else 0, x.stride(0), w.stride(0), w.stride(1),
        res.stride(0) if res is not None else 0, y.stride(0), torch.finfo(x.dtype).eps,
        HAS_RES=res is not None, SWIGLU=swiglu, RMS=rms is not None, SS_OUT=ss,
        BLOCK_M=_block_m(M), BLOCK_N=bn, BLOCK_K=bk, num_warps=warps, num_stages=stages,
        SS_BLOCK=min(256, triton.next_power_of_2(max(rms.shape[0] if rms is not None else 1, 1))),
    )  # fmt: skip
    return (y, sso) if ss else y


def _swiglu(y: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` of ``y = [gate | up]`` in torch's ops (each rounded to y's dtype)."""
    g, u = y.chunk(2, dim=-1)
    return F.silu(g) * u


def _torch_mm(x, w, res, swiglu, rms, ss, exact: bool):
    """:func:`skinny_mm` in torch: the norm applied to x (rounded to x's dtype, as a separate
    norm kernel does), then the product (fp32 with ``exact``, else cuBLAS in x's dtype)."""
    _check(x, w, res, swiglu, rms)
    if rms is not None:
        r = torch.rsqrt(rms.sum(0)[: x.shape[0]] / x.shape[1] + torch.finfo(x.dtype).eps)
        x = (x.float() * r[:, None]).to(x.dtype)
    if exact:
        y = x.float() @ w.float().T + (res.float() if res is not None else 0)
        y = y.to(x.dtype)
    else:
        y = x @ w.T if res is None else torch.addmm(res, x, w.T)
    if swiglu:
        y = _swiglu(y)
    return (y, row_sumsq(y)) if ss else y


def skinny_mm_reference(x, w, res=None, *, swiglu=False, rms=None, ss=False):
    """Pure-torch :func:`skinny_mm` (same arguments): the normed x rounded to its dtype, an fp32
    product plus the residual rounded once, then SwiGLU in torch; sums of squares as one row."""
    return _torch_mm(x, w, res, swiglu, rms, ss, exact=True)


Choice = dict[tuple, "tuple[int, int, int, int] | None"]


def _key(w: torch.Tensor, res, swiglu: bool, rms, ss: bool) -> tuple:
    return (w.shape[0], w.shape[1], res is not None, swiglu, rms is not None, ss)


class SkinnyMM:
    """:func:`skinny_mm` per weight shape and options with the configuration
    :func:`tune_skinny` chose; ``None`` or a missing key: in torch (norm, cuBLAS ``mm`` /
    ``addmm``, SwiGLU). ``choice`` maps ``(N, K, has_res, swiglu, has_rms, ss)`` to a config or
    ``None``."""

    def __init__(self, choice: Choice):
        self.choice = dict(choice)

    def __call__(self, x, w, res=None, *, swiglu=False, rms=None, ss=False):
        cfg = self.choice.get(_key(w, res, swiglu, rms, ss))
        if cfg is not None:
            return skinny_mm(x, w, res, cfg, swiglu=swiglu, rms=rms, ss=ss)
        return _torch_mm(x, w, res, swiglu, rms, ss, exact=False)


def tune_skinny(
    problems: Sequence[tuple[torch.Tensor, torch.Tensor, dict]],
    configs: Sequence[tuple[int, int, int, int]] = CONFIGS,
    reps: int = 20,
) -> tuple[SkinnyMM, list[dict]]:
    """Choose, per weight, the fastest of cuBLAS and the Triton configurations (CUDA only).

    Args:
        problems: (x, W, opts) per distinct projection: activations (M, K), weights (N, K) and
            ``opts`` with booleans ``res``, ``swiglu``, ``rms``, ``ss`` (see :func:`skinny_mm`;
            ``rms``: x's own sums of squares are passed in).
        configs: tile configurations to try.
        reps: timed calls per candidate. Every call reads a different one of several copies of
            the weights when they fit in L2 twice over, so no candidate is timed from cache.

    Returns:
        The :class:`SkinnyMM` and one row per problem: the times in microseconds per candidate
        (``"cublas"``: the norm, cuBLAS and SwiGLU in torch; and each config), the choice and
        its speed-up over cuBLAS. A config whose output differs from the fp32 reference by more
        than the bf16 rounding plus an fp32 reordering error is left out (``"wrong"``).
    """
    from _graphs import graph_replay, seconds_per_call  # the benchmarks' own helpers

    choice: Choice = {}
    rows = []
    for x, w, opts in problems:
        M, N = x.shape[0], w.shape[0]
        copies = [w] + [w.clone() for _ in range(max(0, -(-(200 << 20) // w.nbytes) - 1))]
        # rms: x's sums of squares split over 256 partial rows, as a 4096-wide producer with
        # 16-column programs leaves them (the consumer's reduction is timed too)
        parts = row_sumsq(x).expand(256, -1) / 256
        kw = {"res": torch.randn(M, N, device=x.device, dtype=x.dtype) if opts.get("res") else None,
              "swiglu": bool(opts.get("swiglu")), "rms": parts if opts.get("rms") else None,
              "ss": bool(opts.get("ss"))}  # fmt: skip
        ref = skinny_mm_reference(x, w, **kw)
        ref = (ref[0] if kw["ss"] else ref).float()
        cands = {"cublas": None, **{"x".join(map(str, c)): c for c in configs}}
        key = _key(w, kw["res"], kw["swiglu"], kw["rms"], kw["ss"])
        times = {}
        row = {"N": N, "K": w.shape[1], "M": M, **{k: bool(v) for k, v in opts.items()}}
        for name, cfg in cands.items():
            fn = SkinnyMM({key: cfg})
            try:
                y = fn(x, w, **kw)
            except Exception as e:  # a config that does not compile on this GPU: skip it
                row[name] = f"failed: {type(e).__name__}"
                continue
            y = (y[0] if kw["ss"] else y).float()
            # bf16 output rounding (2^-8 relative) plus fp32 accumulation order: 1e-2 normwise
            err = ((y - ref).norm() / ref.norm().clamp_min(1e-30)).item()
            if not err <= 1e-2:
                row[name] = f"wrong ({err:.2g})"
                continue

            # one CUDA graph of ``reps`` calls: the kernels' device time, not Python launches
            def calls(fn=fn, x=x, ws=copies, kw=kw):
                for i in range(reps):
                    fn(x, ws[i % len(ws)], **kw)

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
