"""Triton kernels for the FP8 casts (GPU fast path; each has a pure-torch reference in _cast_ops).

* ``amax``: grid-stride absolute-max reduction, one ``atomic_max`` per program.
* ``cast_transpose``: reads a bf16/fp16/fp32 (M, N) tensor once and writes its FP8 cast in both
  layouts, (M, N) and (N, M), so the backward GEMMs never re-cast or transpose. In "jit" mode it
  derives the power-of-two bias from the amax in-kernel (exact exponent arithmetic, no host
  sync); in "delayed" mode it uses a given scale and accumulates the tensor's amax for the next
  step in the same pass (one read of the input).

The float scaling follows Perez et al. 2023, Section 3. Run under ``TRITON_INTERPRET=1`` on CPU
tensors for testing; ``OUT_FP32=True`` writes the saturated scaled values in float32 instead of
FP8, because the interpreter's own FP8 rounding differs from the GPU's.
"""

from __future__ import annotations

import functools
import inspect
import math
import struct

import torch

try:  # triton is optional (CPU-only installs, macOS)
    import triton
    import triton.language as tl
    import triton.testing

    HAS_TRITON = True
except Exception:  # pragma: no cover - depends on the platform
    HAS_TRITON = False

__all__ = [
    "HAS_TRITON",
    "launch_amax",
    "launch_cast_transpose",
    "launch_delayed_scale",
    "launch_push",
]


@functools.cache
def _fmax_consts(fmax: float) -> tuple[int, int]:
    """Biased float32 exponent and raw mantissa bits of ``fmax``."""
    bits = struct.unpack("<i", struct.pack("<f", fmax))[0]
    return (bits >> 23) & 0xFF, bits & 0x7FFFFF


if HAS_TRITON:

    @triton.jit
    def _to_fp8(v, E5M2: tl.constexpr):
        if E5M2:
            return v.to(tl.float8e5)
        else:
            return v.to(tl.float8e4nv)

    @triton.jit
    def _amax_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr, WAVES: tl.constexpr = 1):
        # WAVES (programs per SM) only sizes the grid of the autotuned launch
        pid = tl.program_id(0)
        nprog = tl.num_programs(0)
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        n_full = n // BLOCK
        # full blocks without a mask (vector loads), grid-stride over the programs
        for blk in range(pid, n_full, nprog):
            offs = tl.multiple_of(blk * BLOCK, BLOCK) + tl.arange(0, BLOCK)
            a = tl.abs(tl.load(x_ptr + offs).to(tl.float32))
            acc = tl.maximum(acc, tl.where(a != a, float("inf"), a))  # NaN counts as inf
        if pid == nprog - 1:  # the partial last block
            offs = n_full * BLOCK + tl.arange(0, BLOCK)
            a = tl.abs(tl.load(x_ptr + offs, mask=offs < n, other=0.0).to(tl.float32))
            acc = tl.maximum(acc, tl.where(a != a, float("inf"), a))
        tl.atomic_max(out_ptr, tl.max(acc, 0))

    @triton.jit
    def _bias_from_amax(a, EF: tl.constexpr, MF: tl.constexpr, MARGIN: tl.constexpr):
        bits = a.to(tl.int32, bitcast=True)
        ea = (bits >> 23) & 0xFF
        ma = bits & 0x7FFFFF
        b = EF - ea - (ma > MF).to(tl.int32)
        b = tl.where(ea == 0, 1000, b)  # zero and float32 subnormals: clipped to +31
        b = tl.where((ea == 255) & (ma == 0), -1000, b)  # inf: clipped to -31
        b = tl.minimum(tl.maximum(b - MARGIN, -31), 31)
        return b, (ea == 255) & (ma != 0)

    @triton.jit
    def _cast_t_kernel(
        x_ptr,
        amax_ptr,
        scale_ptr,
        q_ptr,
        qt_ptr,
        inv_ptr,
        amax_out_ptr,
        M,
        N,
        FMAX: tl.constexpr,
        EF: tl.constexpr,
        MF: tl.constexpr,
        MARGIN: tl.constexpr,
        DELAYED: tl.constexpr,
        WRITE_T: tl.constexpr,
        OUT_FP32: tl.constexpr,
        E5M2: tl.constexpr,
        BM: tl.constexpr,
        BN: tl.constexpr,
        GROUP: tl.constexpr,
        TRANS_HP: tl.constexpr,
        REVERSE: tl.constexpr,
    ):
        pid = tl.program_id(0)
        if REVERSE:  # last tiles first: they are still in L2 after the amax pass read them
            pid = tl.num_programs(0) - 1 - pid
        n_m = tl.cdiv(M, BM)
        n_n = tl.cdiv(N, BN)
        # grouped ordering: neighbouring programs share column panels of the transposed output
        per_group = GROUP * n_n
        g = pid // per_group
        first_m = g * GROUP
        gsize = tl.minimum(n_m - first_m, GROUP)
        pid_m = first_m + (pid % per_group) % gsize
        pid_n = (pid % per_group) // gsize
        if DELAYED:
            scale = tl.load(scale_ptr)
        else:
            a = tl.load(amax_ptr)
            b, is_nan = _bias_from_amax(a, EF, MF, MARGIN)
            scale = ((b + 127) << 23).to(tl.float32, bitcast=True)  # exact 2**b
            scale = tl.where(is_nan, float("nan"), scale)
            if pid == 0:
                tl.store(inv_ptr, 1.0 / scale)  # exact: a power of two
        rm = pid_m * BM + tl.arange(0, BM)
        rn = pid_n * BN + tl.arange(0, BN)
        mask = (rm[:, None] < M) & (rn[None, :] < N)
        x = tl.load(x_ptr + rm[:, None] * N + rn[None, :], mask=mask, other=0.0).to(tl.float32)
        ax = tl.abs(x)
        q = tl.minimum(tl.maximum(x * scale, -FMAX), FMAX)
        q = tl.where(ax == float("inf"), float("nan"), q)
        q = tl.where(x != x, float("nan"), q)
        if DELAYED:
            ax = tl.where(ax != ax, float("inf"), ax)
            tl.atomic_max(amax_out_ptr, tl.max(tl.max(ax, 1), 0))
        if OUT_FP32:
            qo = q
        else:
            qo = _to_fp8(q, E5M2)
        tl.store(q_ptr + rm[:, None] * N + rn[None, :], qo, mask=mask)
        if WRITE_T:
            if TRANS_HP and not OUT_FP32:
                qto = _to_fp8(tl.trans(q), E5M2)  # transpose 32-bit values, then convert
            else:
                qto = tl.trans(qo)
            tl.store(qt_ptr + rn[:, None] * M + rm[None, :], qto, mask=mask.T)

    @triton.jit
    def _delayed_scale_kernel(
        hist_ptr,
        scale_ptr,
        inv_ptr,
        L,
        EF: tl.constexpr,
        MF: tl.constexpr,
        MARGIN: tl.constexpr,
        MOST_RECENT: tl.constexpr,
        INIT_BIAS: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        offs = tl.arange(0, BLOCK)
        h = tl.load(hist_ptr + offs, mask=offs < L, other=0.0)
        filled = tl.max((h > 0).to(tl.int32), 0)
        if MOST_RECENT:
            a = tl.load(hist_ptr)
        else:
            a = tl.max(h, 0)
        b, _ = _bias_from_amax(a, EF, MF, MARGIN)
        b = tl.where(filled > 0, b, INIT_BIAS)  # nothing recorded yet: the initial bias
        tl.store(scale_ptr, ((b + 127) << 23).to(tl.float32, bitcast=True))  # exact 2**b
        tl.store(inv_ptr, ((127 - b) << 23).to(tl.float32, bitcast=True))  # exact 2**-b

    @triton.jit
    def _push_kernel(hist_ptr, a_ptr, L, BLOCK: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        a = tl.load(a_ptr + offs * 0)  # the amax, broadcast to every lane
        finite = tl.abs(a) < float("inf")  # False for inf and NaN: those are not pushed
        keep = offs < L - 1
        h = tl.load(hist_ptr + offs, mask=keep, other=0.0)
        tl.debug_barrier()  # every old value is read before any is overwritten
        tl.store(hist_ptr + offs + 1, h, mask=keep & finite)
        tl.store(hist_ptr + offs, a, mask=(offs == 0) & finite)


if HAS_TRITON:
    # GPU variants, picked per size by measurement: (elements per step, warps, programs per SM)
    _AMAX_CFGS = [(4096, 8, 8), (8192, 8, 64), (16384, 16, 4), (2048, 4, 16), (8192, 8, 1 << 20)]
    _CAST_CFGS = [
        triton.Config({"BM": bm, "BN": bn, "GROUP": 8, "TRANS_HP": th}, num_warps=w)
        for bm, bn, w, th in (
            (64, 128, 8, False),
            (64, 128, 8, True),
            (128, 128, 8, False),
            (128, 128, 8, True),
            (128, 64, 4, False),
            (32, 128, 4, True),
        )
    ]
    _tune_kw: dict = {}
    if "do_bench" in inspect.signature(triton.autotune).parameters:  # short tuning runs
        _tune_kw["do_bench"] = functools.partial(triton.testing.do_bench, warmup=5, rep=20)
    _cast_t_tuned = triton.autotune(
        configs=_CAST_CFGS, key=["M", "N", "DELAYED", "WRITE_T"], **_tune_kw
    )(_cast_t_kernel)
    _AMAX_BEST: dict = {}
    # the same kernels for launches traced by torch.compile (torch.library.triton_op): plain
    # autotuners (configs and keys only), which inductor compiles into its own wrapper code
    _cast_t_inline = triton.autotune(configs=_CAST_CFGS, key=["M", "N", "DELAYED", "WRITE_T"])(
        _cast_t_kernel
    )
    _amax_inline = triton.autotune(
        configs=[
            triton.Config({"BLOCK": b, "WAVES": v}, num_warps=w) for b, w, v in _AMAX_CFGS[:4]
        ],
        key=["n"],
    )(_amax_kernel)


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _amax_launch(x, out, n, cfg, sms):
    block, warps, waves = cfg
    grid = max(1, min(triton.cdiv(n, block), sms * waves))
    _amax_kernel[(grid,)](x, out, n, BLOCK=block, num_warps=warps)


def launch_amax(x: torch.Tensor, wrap=None) -> torch.Tensor:
    """Absolute max of a contiguous tensor as a float32 0-d tensor (NaN counts as inf).

    ``wrap``: ``torch.library.wrap_triton`` when called from a ``triton_op`` (traced by
    ``torch.compile``; the launch configuration is then autotuned by Triton).
    """
    out = torch.zeros((), dtype=torch.float32, device=x.device)
    n = x.numel()
    if n == 0:
        return out
    flat = x.reshape(-1)
    if wrap is not None:
        sms = _sm_count(x.device.index or 0)

        def grid(meta):
            return (max(1, min(triton.cdiv(n, meta["BLOCK"]), sms * meta["WAVES"])),)

        wrap(_amax_inline)[grid](flat, out, n)
        return out
    if not x.is_cuda:
        _amax_launch(flat, out, n, (256, 1, 1), 4)
        return out
    sms = _sm_count(x.device.index or 0)
    key = (n, x.dtype, x.device.index)
    if key not in _AMAX_BEST:  # one-time measurement per size (like triton.autotune)
        times = []
        for cfg in _AMAX_CFGS:
            tmp = torch.zeros((), dtype=torch.float32, device=x.device)
            t = triton.testing.do_bench(
                lambda cfg=cfg, tmp=tmp: _amax_launch(flat, tmp, n, cfg, sms),
                warmup=5,
                rep=20,
                return_mode="median",
            )
            times.append(t)
        _AMAX_BEST[key] = _AMAX_CFGS[times.index(min(times))]
    _amax_launch(flat, out, n, _AMAX_BEST[key], sms)
    return out


def _cast_buffers(
    x: torch.Tensor,
    fmt_name: str,
    *,
    amax: torch.Tensor | None,
    scale: torch.Tensor | None,
    transpose: bool,
    out_fp32: bool,
) -> tuple:
    """Outputs and scale operands of the fused casts (this module's and ``_fastcast``'s).

    Returns ``(q (M, N), qt (N, M) or (0, 0), inv 0-d, amax_in, scale_in, amax_out, delayed)``:
    JIT (``amax`` given) reads and returns ``amax``; delayed (``scale`` given) accumulates the
    amax of ``x`` into a fresh zero and ``inv`` is ``1/scale``.
    """
    m, n = x.shape
    dev = x.device
    odt = (
        torch.float32
        if out_fp32
        else {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}[fmt_name]
    )
    q = torch.empty((m, n), dtype=odt, device=dev)
    qt = torch.empty((n, m) if transpose else (0, 0), dtype=odt, device=dev)
    delayed = scale is not None
    if delayed:
        scale_in = scale.float().reshape(())
        inv = 1.0 / scale_in
        amax_out = torch.zeros((), dtype=torch.float32, device=dev)
        amax_in = amax_out
    else:
        if amax is None:
            raise ValueError("give amax (JIT mode) or scale (delayed mode)")
        amax_in = amax.float().reshape(())
        scale_in = amax_out = amax_in
        inv = torch.empty((), dtype=torch.float32, device=dev)
    return q, qt, inv, amax_in, scale_in, amax_out, delayed


def _cast_consts(
    fmt_name: str, fmax: float, margin: int, delayed: bool, write_t: bool, out_fp32: bool
) -> dict:
    """Compile-time constants shared by the fused cast kernels."""
    ef, mf = _fmax_consts(fmax)
    return dict(
        FMAX=fmax,
        EF=ef,
        MF=mf,
        MARGIN=int(margin),
        DELAYED=delayed,
        WRITE_T=write_t,
        OUT_FP32=out_fp32,
        E5M2=fmt_name == "e5m2",
        REVERSE=not delayed,  # JIT: the amax pass just read x; start where it ended
    )


def launch_cast_transpose(
    x: torch.Tensor,
    fmt_name: str,
    fmax: float,
    *,
    amax: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    margin: int = 0,
    transpose: bool = True,
    out_fp32: bool = False,
    _interp_tiles: tuple[int, int, int] = (16, 16, 1),
    wrap=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cast a 2-D contiguous tensor to FP8 in both layouts in one pass.

    Give ``amax`` (JIT: bias derived in-kernel) or ``scale`` (delayed/constant: the amax of ``x``
    is accumulated in the same pass). Returns ``(q (M, N), qt (N, M) or empty, inv_scale 0-d,
    amax_out 0-d)``; in JIT mode ``amax_out`` is ``amax`` itself. ``_interp_tiles`` (tile rows,
    tile columns, group) is the tiling used for CPU tensors under ``TRITON_INTERPRET=1`` (tests);
    on the GPU the tiling is autotuned. ``wrap``: as in :func:`launch_amax`.
    """
    if x.dim() != 2 or not x.is_contiguous():
        raise ValueError(
            f"cast_transpose needs a contiguous 2-D tensor, got shape {tuple(x.shape)}"
        )
    m, n = x.shape
    q, qt, inv, amax_in, scale_in, amax_out, delayed = _cast_buffers(
        x, fmt_name, amax=amax, scale=scale, transpose=transpose, out_fp32=out_fp32
    )
    # The in-kernel transposed write is verified bit-exact on the H200 for 2-byte inputs only;
    # for float32 inputs (float32 master weights) it produced a wrong transposed copy there
    # (the row-major copy was exact), which made the grad-input GEMM garbage and GPT training
    # NaN. For those inputs the transposed copy is taken from the exact row-major cast.
    kernel_t = transpose and x.element_size() == 2
    if m * n > 0:
        args = (x, amax_in, scale_in, q, qt if kernel_t else q, inv, amax_out, m, n)
        consts = _cast_consts(fmt_name, fmax, margin, delayed, kernel_t, out_fp32)
        if x.is_cuda:
            grid = lambda meta: (triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"]),)  # noqa: E731
            kern = _cast_t_tuned if wrap is None else wrap(_cast_t_inline)
            kern[grid](*args, **consts)
        else:
            bm, bn, group = _interp_tiles
            grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn),)
            _cast_t_kernel[grid](
                *args, **consts, BM=bm, BN=bn, GROUP=group, TRANS_HP=False, num_warps=1
            )
        if transpose and not kernel_t:
            qt.copy_(q.t())
    elif not delayed:
        inv.fill_(math.nan)
    return q, qt, inv, amax_out


def launch_delayed_scale(
    hist_row: torch.Tensor, fmax: float, margin: int, most_recent: bool, init_bias: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(2**b, 2**-b)`` float32 0-d from an amax history row (L,), newest first, in one launch.

    ``b`` is the bias of the row's max (or newest) amax, as :func:`fp8_scaling.compute_bias`
    with ``margin``, or ``init_bias`` while the row holds no positive amax. For the "max" and
    "most_recent" algorithms of :class:`fp8_scaling.DelayedScaling`; ``init_bias`` in [-31, 31].
    """
    if not (hist_row.dim() == 1 and hist_row.is_contiguous() and hist_row.dtype == torch.float32):
        raise ValueError(f"need a contiguous float32 history row, got {tuple(hist_row.shape)}")
    scale = torch.empty((), dtype=torch.float32, device=hist_row.device)
    inv = torch.empty_like(scale)
    n = hist_row.numel()
    ef, mf = _fmax_consts(fmax)
    _delayed_scale_kernel[(1,)](
        hist_row, scale, inv, n, EF=ef, MF=mf, MARGIN=int(margin), MOST_RECENT=bool(most_recent),
        INIT_BIAS=int(init_bias), BLOCK=max(2, triton.next_power_of_2(n)), num_warps=1,
    )  # fmt: skip
    return scale, inv


def launch_push(hist_row: torch.Tensor, a: torch.Tensor) -> None:
    """Roll the history row (L,) by one and put the amax ``a`` (0-d) first, unless non-finite."""
    n = hist_row.numel()
    _push_kernel[(1,)](
        hist_row, a.float().reshape(()), n, BLOCK=max(2, triton.next_power_of_2(n)), num_warps=1
    )
