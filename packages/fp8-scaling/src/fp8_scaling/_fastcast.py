"""Tunable Triton cast kernels for 2-byte inputs (bf16/fp16): JIT and delayed, both layouts.

``_cast2_kernel`` reads an (M, N) tile once and writes the FP8 tile row-major into ``q`` (M, N)
and transposed into ``qt`` (N, M). Its launch configuration is a :class:`CastConfig` (tile
shape, warps, how the transposed tile is formed, persistent grid size, load pipelining), picked
per GPU and tensor shape from the tuned table (:mod:`fp8_scaling._tuned`):

* ``tmode`` 0: the FP8 tile is transposed (``tl.trans`` on 8-bit values);
  1: the float32 scaled values are transposed, then converted;
  2: the 16-bit input tile is transposed and cast a second time (the cast is elementwise, so
  both copies hold the same bytes). (A fourth mode that packed 4 FP8 bytes along M into int32
  words before transposing passed the interpreter tests but wrote wrong bytes on the H200; it
  was removed.)
* ``waves``: programs per SM; the grid is ``min(tiles, SMs * waves)`` and each program walks
  the tiles with a grid stride (``waves=0``: one program per tile). ``stages`` > 1 asks the
  compiler to pipeline the loads of the next tile.

In delayed mode the amax of the input is kept elementwise in registers across a program's tiles
and published once per program with an integer ``atomic_max`` on the float32 bit pattern
(non-negative floats order like their bits; NaN is mapped to inf first); with ``TILE_MAX``
each tile is reduced to a scalar at once instead (the first pass of the one-pass JIT cast of
:mod:`fp8_scaling._speccast`, whose check pass is ``FIXUP``). The JIT scale is the
power-of-two of Perez et al. 2023, Section 3, built from the amax's exponent bits (exact).
The pure-torch references are :func:`fp8_scaling._cast_ops.cast_transpose_ref` and
:func:`fp8_scaling._cast_ops.delayed_cast_ref`.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from ._kernels import HAS_TRITON, _cast_buffers, _cast_consts, _sm_count

if HAS_TRITON:
    import triton
    import triton.language as tl

__all__ = ["AmaxConfig", "CastConfig", "launch_amax2", "launch_cast2"]


@dataclasses.dataclass(frozen=True)
class CastConfig:
    """Launch configuration of :func:`launch_cast2` (see the module docstring)."""

    bm: int = 128
    bn: int = 128
    warps: int = 8
    tmode: int = 0
    waves: int = 0
    stages: int = 1
    group: int = 8

    def name(self) -> str:
        return (
            f"{self.bm}x{self.bn}w{self.warps}t{self.tmode}p{self.waves}s{self.stages}g{self.group}"
        )

    @classmethod
    def from_dict(cls, d: dict) -> CastConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in fields})


@dataclasses.dataclass(frozen=True)
class AmaxConfig:
    """Launch configuration of :func:`launch_amax2`: elements per step, warps, programs per SM
    (0: one program per block) and load pipelining stages of the grid-stride loop."""

    block: int = 8192
    warps: int = 8
    waves: int = 8
    stages: int = 1

    def name(self) -> str:
        return f"b{self.block}w{self.warps}p{self.waves}" + (
            f"s{self.stages}" if self.stages > 1 else ""
        )

    @classmethod
    def from_dict(cls, d: dict) -> AmaxConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in fields})


if HAS_TRITON:

    @triton.jit
    def _fp8(v, E5M2: tl.constexpr, OUT_FP32: tl.constexpr):
        if OUT_FP32:
            return v
        elif E5M2:
            return v.to(tl.float8e5)
        else:
            return v.to(tl.float8e4nv)

    @triton.jit
    def _scaled(x, scale, FMAX: tl.constexpr):
        """Saturating scaled values (float32); inf and NaN inputs give NaN."""
        q = tl.minimum(tl.maximum(x * scale, -FMAX), FMAX)
        return tl.where((tl.abs(x) == float("inf")) | (x != x), float("nan"), q)

    @triton.jit
    def _amax2_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr, STAGES: tl.constexpr):
        pid = tl.program_id(0)
        nprog = tl.num_programs(0)
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        n_full = n // BLOCK
        step = tl.full([], BLOCK, tl.int64)  # 64-bit offsets: n may exceed 2**31
        for blk in tl.range(pid, n_full, nprog, num_stages=STAGES):  # full blocks: no mask
            offs = blk * step + tl.arange(0, BLOCK)
            a = tl.abs(tl.load(x_ptr + offs).to(tl.float32))
            acc = tl.maximum(acc, tl.where(a != a, float("inf"), a))
        if pid == nprog - 1:  # the partial last block
            offs = n_full * step + tl.arange(0, BLOCK)
            a = tl.abs(tl.load(x_ptr + offs, mask=offs < n, other=0.0).to(tl.float32))
            acc = tl.maximum(acc, tl.where(a != a, float("inf"), a))
        # float32 output viewed as int32: one integer atomic (non-negative floats order as ints)
        bits_ptr = out_ptr.to(tl.pointer_type(tl.int32), bitcast=True)
        # relaxed: ordering is given by the kernel boundary, no fence per program
        tl.atomic_max(bits_ptr, tl.max(acc, 0).to(tl.int32, bitcast=True), sem="relaxed")

    @triton.jit
    def _cast2_kernel(
        x_ptr, amax_ptr, scale_ptr, q_ptr, qt_ptr, inv_ptr, amax_out_ptr, M, N,
        FMAX: tl.constexpr, EF: tl.constexpr, MF: tl.constexpr, MARGIN: tl.constexpr,
        DELAYED: tl.constexpr, WRITE_T: tl.constexpr, OUT_FP32: tl.constexpr,
        E5M2: tl.constexpr, EVEN: tl.constexpr, REVERSE: tl.constexpr,
        BM: tl.constexpr, BN: tl.constexpr, GROUP: tl.constexpr, TMODE: tl.constexpr,
        STAGES: tl.constexpr, TILE_MAX: tl.constexpr, FIXUP: tl.constexpr,
    ):  # fmt: skip
        # every argument is passed explicitly (no defaults): torch.compile's wrapper of a
        # user-defined Triton kernel (wrap_triton) cannot bind default values
        pid = tl.program_id(0)
        nprog = tl.num_programs(0)
        n_m = tl.cdiv(M, BM)
        n_n = tl.cdiv(N, BN)
        n_tiles = n_m * n_n
        n_iter = n_tiles
        per_group = GROUP * n_n
        if DELAYED:
            scale = tl.load(scale_ptr)
            if TILE_MAX:  # one running scalar per program (each tile reduced)
                acc = tl.full([], 0.0, tl.float32)
            else:
                acc = tl.zeros([BM, BN], dtype=tl.float32)
        else:
            bits = tl.load(amax_ptr).to(tl.int32, bitcast=True)
            ea = (bits >> 23) & 0xFF
            ma = bits & 0x7FFFFF
            b = EF - ea - (ma > MF).to(tl.int32)
            b = tl.where(ea == 0, 1000, b)  # zero and float32 subnormals: clipped to +31
            b = tl.where((ea == 255) & (ma == 0), -1000, b)  # inf: clipped to -31
            unclipped = b - MARGIN >= -31  # else some |x| * scale may exceed FMAX (saturation)
            b = tl.minimum(tl.maximum(b - MARGIN, -31), 31)
            scale = ((b + 127) << 23).to(tl.float32, bitcast=True)  # exact 2**b
            scale = tl.where((ea == 255) & (ma != 0), float("nan"), scale)
            if pid == 0:
                tl.store(inv_ptr, 1.0 / scale)  # exact: a power of two
            if FIXUP:  # q/qt were written with the scale at scale_ptr: recast only if it differs
                if pid == 0:
                    tl.store(amax_out_ptr, scale)  # the JIT scale, for the next step's guess
                # the bytes stand only for a scale nothing saturates at (a lean first pass
                # neither clamps nor maps inf to NaN); an inf amax is clipped (b = -1000), a
                # NaN amax or guess gives a NaN scale that equals nothing: both recast
                holds = (scale == tl.load(scale_ptr)) & unclipped
                n_iter = tl.where(holds, 0, n_tiles)
        for t in tl.range(pid, n_iter, nprog, num_stages=STAGES):
            tile = t
            if REVERSE:  # the tail was read last by the amax pass: still in L2
                tile = n_tiles - 1 - t
            # grouped order: GROUP neighbouring row tiles share a panel of the transposed copy
            g = tile // per_group
            first_m = g * GROUP
            gsize = tl.minimum(n_m - first_m, GROUP)
            pid_m = first_m + (tile % per_group) % gsize
            pid_n = (tile % per_group) // gsize
            rm = pid_m.to(tl.int64) * BM + tl.arange(0, BM)
            rn = pid_n.to(tl.int64) * BN + tl.arange(0, BN)
            rm = tl.max_contiguous(tl.multiple_of(rm, BM), BM)
            rn = tl.max_contiguous(tl.multiple_of(rn, BN), BN)
            ptrs = x_ptr + rm[:, None] * N + rn[None, :]
            if EVEN:
                xh = tl.load(ptrs)
            else:
                mask = (rm[:, None] < M) & (rn[None, :] < N)
                xh = tl.load(ptrs, mask=mask, other=0.0)
            x = xh.to(tl.float32)
            if DELAYED:
                ax = tl.abs(x)
                ax = tl.where(ax != ax, float("inf"), ax)
                if TILE_MAX:
                    acc = tl.maximum(acc, tl.max(tl.max(ax, 1), 0))
                else:
                    acc = tl.maximum(acc, ax)
            q = _scaled(x, scale, FMAX)
            qo = _fp8(q, E5M2, OUT_FP32)
            q_ptrs = q_ptr + rm[:, None] * N + rn[None, :]
            if EVEN:
                tl.store(q_ptrs, qo)
            else:
                tl.store(q_ptrs, qo, mask=mask)
            if WRITE_T:
                if TMODE == 2:  # transpose the 16-bit input, cast again
                    qto = _fp8(_scaled(tl.trans(xh).to(tl.float32), scale, FMAX), E5M2, OUT_FP32)
                elif TMODE == 1:  # transpose 32-bit values, then convert
                    qto = _fp8(tl.trans(q), E5M2, OUT_FP32)
                else:
                    qto = tl.trans(qo)
                qt_ptrs = qt_ptr + rn[:, None] * M + rm[None, :]
                if EVEN:
                    tl.store(qt_ptrs, qto)
                else:
                    tl.store(qt_ptrs, qto, mask=(rn[:, None] < N) & (rm[None, :] < M))
        if DELAYED:
            bits_ptr = amax_out_ptr.to(tl.pointer_type(tl.int32), bitcast=True)
            if TILE_MAX:
                # one atomic per program: skipping those that do not raise the running maximum
                # (read from L2 first) measured 1-2.5 % slower on the H200 (run 13)
                tl.atomic_max(bits_ptr, acc.to(tl.int32, bitcast=True), sem="relaxed")
            else:
                a = tl.max(tl.max(acc, 1), 0)
                tl.atomic_max(bits_ptr, a.to(tl.int32, bitcast=True), sem="relaxed")

    @functools.cache
    def _inline_cast(cfg: CastConfig):
        """A one-config autotuner of the cast kernel (for launches traced by torch.compile)."""
        c = triton.Config(
            {"BM": cfg.bm, "BN": cfg.bn, "GROUP": cfg.group, "TMODE": cfg.tmode,
             "STAGES": cfg.stages},
            num_warps=cfg.warps,
        )  # fmt: skip
        return triton.autotune(configs=[c], key=["M", "N"])(_cast2_kernel)

    @functools.cache
    def _inline_amax(cfg: AmaxConfig):
        c = triton.Config({"BLOCK": cfg.block, "STAGES": cfg.stages}, num_warps=cfg.warps)
        return triton.autotune(configs=[c], key=["n"])(_amax2_kernel)


def _grid_size(tiles_or_blocks: int, waves: int, device: torch.device) -> int:
    if waves <= 0 or device.type != "cuda":
        return max(1, tiles_or_blocks)
    return max(1, min(tiles_or_blocks, _sm_count(device.index or 0) * waves))


def launch_amax2(x: torch.Tensor, cfg: AmaxConfig, wrap=None) -> torch.Tensor:
    """Absolute max of a contiguous tensor (float32 0-d, NaN counts as inf) with ``cfg``.

    Each program reduces a grid-stride share and publishes it with one integer ``atomic_max``
    on the float32 bits. ``wrap``: ``torch.library.wrap_triton`` inside a ``triton_op``.
    """
    out = torch.zeros((), dtype=torch.float32, device=x.device)
    n = x.numel()
    if n == 0:
        return out
    flat = x.reshape(-1)
    grid = (_grid_size(triton.cdiv(n, cfg.block), cfg.waves, x.device),)
    if wrap is not None:
        wrap(_inline_amax(cfg))[grid](flat, out, n)
    else:
        _amax2_kernel[grid](flat, out, n, BLOCK=cfg.block, STAGES=cfg.stages, num_warps=cfg.warps)
    return out


def launch_cast2(
    x: torch.Tensor,
    fmt_name: str,
    fmax: float,
    cfg: CastConfig,
    *,
    amax: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    margin: int = 0,
    transpose: bool = True,
    out_fp32: bool = False,
    wrap=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """FP8 cast of a contiguous 2-D bf16/fp16 tensor (M, N) in both layouts with ``cfg``.

    As :func:`fp8_scaling._kernels.launch_cast_transpose`: give ``amax`` (JIT power-of-two
    bias derived in the kernel) or ``scale`` (delayed: the amax of ``x`` is accumulated in the
    same pass). Returns ``(q (M, N), qt (N, M) or (0, 0), inv_scale 0-d, amax 0-d)``.
    ``out_fp32`` writes the saturated scaled float32 values instead of FP8 (interpreter tests).
    """
    if x.dim() != 2 or not x.is_contiguous() or x.element_size() != 2:
        raise ValueError(
            f"launch_cast2 needs a contiguous 2-D bf16/fp16 tensor, got shape "
            f"{tuple(x.shape)}, dtype {x.dtype}; use launch_cast_transpose for other inputs"
        )
    if fmt_name not in ("e4m3", "e5m2"):
        raise ValueError(f"launch_cast2 supports 'e4m3' and 'e5m2', got {fmt_name!r}")
    m, n = x.shape
    q, qt, inv, amax_in, scale_in, amax_out, delayed = _cast_buffers(
        x, fmt_name, amax=amax, scale=scale, transpose=transpose, out_fp32=out_fp32
    )
    if m * n == 0:
        if not delayed:
            inv.fill_(float("nan"))
        return q, qt, inv, amax_out
    if cfg.tmode not in (0, 1, 2):
        raise ValueError(f"CastConfig.tmode must be 0, 1 or 2, got {cfg.tmode}")
    tiles = triton.cdiv(m, cfg.bm) * triton.cdiv(n, cfg.bn)
    grid = (_grid_size(tiles, cfg.waves, x.device),)
    args = (x, amax_in, scale_in, q, qt if transpose else q, inv, amax_out, m, n)
    consts = _cast_consts(fmt_name, fmax, margin, delayed, transpose, out_fp32)
    consts["EVEN"] = (m % cfg.bm == 0) and (n % cfg.bn == 0)
    # the delayed recipe keeps its elementwise accumulator (measured: 128-136 us at 8192^2 on
    # the H200, and 128-130 us with per-tile maxima, run 13); TILE_MAX is the one-pass JIT
    # cast's first pass (fp8_scaling._speccast)
    consts["TILE_MAX"] = False
    consts["FIXUP"] = False
    # every constexpr passed explicitly: torch.compile's triton wrapper rejects launches that
    # leave defaulted kernel arguments out ("Incorrect number of arguments")
    consts.update(TILE_MAX=False, FIXUP=False)
    if wrap is not None:
        wrap(_inline_cast(cfg))[grid](*args, **consts)
    else:
        _cast2_kernel[grid](
            *args, **consts, BM=cfg.bm, BN=cfg.bn, GROUP=cfg.group, TMODE=cfg.tmode,
            STAGES=cfg.stages, num_warps=cfg.warps,
        )  # fmt: skip
    return q, qt, inv, amax_out
