"""First pass of the one-pass JIT cast: cast with a given scale, amax of the input on its bits.

The one-pass JIT cast (:mod:`fp8_scaling._speccast`) first casts a contiguous (M, N) bf16/fp16
tensor in both layouts with the previous step's scale and measures the amax in the same pass.
This module holds a leaner kernel for that pass than the general cast of
:mod:`fp8_scaling._fastcast`:

* the amax is taken on the **16-bit patterns**: ``bits & 0x7FFF`` orders non-negative values
  like their magnitudes and puts every NaN above inf, so one integer ``max`` per element
  replaces ``abs``, the NaN test and a float ``max``; the same ``bits >= inf bits`` test marks
  the elements whose FP8 value is NaN (inf and NaN inputs, as the reference cast). The amax is
  exact (every bf16/fp16 value is a float32) and NaN counts as inf (Perez et al. 2023,
  Section 3: the scale is derived from the amax; a NaN must not yield a finite scale);
* ``amax``: 0 reduces each tile to a scalar (int32) as it goes (2: axis by axis); 1 keeps an
  elementwise int16 maximum across a program's tiles and reduces it once; either way one
  integer ``atomic_max`` on the float32 bits per program. (On the H200 with triton 3.6, run 18,
  every configuration with a per-tile reduction wrote wrong bytes, amax right; ``amax`` 1
  passed. The interpreter runs all of them correctly.);
* ``tma``: 1 moves the tiles with Hopper's tensor-memory accelerator (host-side tensor
  descriptors: the load, the row-major store and the transposed store of each tile are bulk
  copies through shared memory; edge tiles are clipped by the hardware, no masks). Needs the
  row strides and the input's address 16-byte aligned (N % 16 == 0 and M % 16 == 0); other
  inputs use the pointer kernel;
* ``waves``: programs per SM (0: one program per tile), walking the tiles with a grid
  stride; ``stages`` > 1 asks the compiler to pipeline the next tile's load;
* (on the H200 with triton 3.6, runs 20-21, the configurations with one program per tile,
  a per-tile reduction, the packed transposition or tensor descriptors wrote wrong bytes in
  part of the transposed copy while the interpreter's were right; barriers around the
  shared-memory reductions did not cure it. ``cast_bw.py`` byte-checks every configuration
  on the GPU before timing it, and only checked ones enter the tuned table);
* ``lean``: 1 casts without clamping and without the inf/NaN test, and takes the amax as a
  NaN-propagating float maximum of ``|x|`` kept elementwise (about half the arithmetic per
  element). The bytes are then the JIT bytes only when the scale is the JIT scale of a finite
  amax whose bias was not clipped at -31 (every ``|x| * scale <= fmax``, so nothing saturates);
  the check pass of :mod:`fp8_scaling._speccast` recasts in every other case, so the one-pass
  cast stays bit-identical to the two-pass one. Pointer kernel, ``tmode`` 0 or 2, ``amax``
  ignored; not for a first pass used on its own with an arbitrary scale;
* ``tmode`` as in :mod:`fp8_scaling._fastcast`: 0 transposes the FP8 tile, 2 the 16-bit tile
  (cast a second time); 3 loads rows 4i..4i+3 of a tile as four sub-tiles and packs their FP8
  bytes into one 32-bit word per column, so the transposed copy moves 32-bit words (pointer
  kernel, one program per tile or a grid stride; M % 4 == 0, else tmode 0).

Pure-torch reference: :func:`fp8_scaling._cast_ops.delayed_cast_ref` (a cast with a given
scale that also returns the amax), which the interpreter tests compare with over odd shapes.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from ._fastcast import _grid_size
from ._kernels import HAS_TRITON

if HAS_TRITON:
    import triton
    import triton.language as tl

__all__ = ["SpecConfig", "launch_spec_first", "lean_ok", "packed_ok", "tma_ok"]


@dataclasses.dataclass(frozen=True)
class SpecConfig:
    """Launch configuration of :func:`launch_spec_first` (module docstring)."""

    bm: int = 64
    bn: int = 128
    warps: int = 8
    waves: int = 0
    amax: int = 0
    tma: int = 0
    tmode: int = 0
    group: int = 8
    stages: int = 1
    bits32: int = 0
    lean: int = 0

    def name(self) -> str:
        return (
            f"v3_{self.bm}x{self.bn}w{self.warps}p{self.waves}a{self.amax}"
            f"{'tma' if self.tma else ''}t{self.tmode}g{self.group}"
            + (f"s{self.stages}" if self.stages > 1 else "")
            + ("b32" if self.bits32 else "")
            + ("l" if self.lean else "")
        )

    @classmethod
    def from_dict(cls, d: dict) -> SpecConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in fields})


def packed_ok(x: torch.Tensor, q: torch.Tensor, qt: torch.Tensor | None) -> bool:
    """Whether the packed transposition (``tmode`` 3) applies: FP8 outputs with a transposed
    copy whose rows are whole 32-bit words (M % 4 == 0)."""
    return qt is not None and q.element_size() == 1 and x.shape[0] % 4 == 0


def lean_ok(cfg: SpecConfig) -> bool:
    """Whether ``cfg`` can run lean (``lean=1``): the pointer kernel with ``tmode`` 0 or 2."""
    return not cfg.tma and cfg.tmode in (0, 2)


def tma_ok(m: int, n: int) -> bool:
    """Whether tensor descriptors can address (M, N) 2-byte inputs and their FP8 copies."""
    return m % 16 == 0 and n % 16 == 0


if HAS_TRITON:

    @triton.jit
    def _to_fp8(v, E5M2: tl.constexpr, OUT_FP32: tl.constexpr):
        if OUT_FP32:
            return v
        elif E5M2:
            return v.to(tl.float8e5)
        else:
            return v.to(tl.float8e4nv)

    @triton.jit
    def _cast_tile(xh, scale, FMAX: tl.constexpr, INF: tl.constexpr, E5M2: tl.constexpr,
                   OUT_FP32: tl.constexpr, BITS32: tl.constexpr):  # fmt: skip
        """FP8 values of a 16-bit tile and its magnitude bits (NaN above inf): of the 16-bit
        patterns, or with BITS32 of the (exact) float32 values."""
        xf = xh.to(tl.float32)
        if BITS32:
            bits = xf.to(tl.int32, bitcast=True) & 0x7FFFFFFF
            special = bits >= 0x7F800000
        else:
            bits = xh.to(tl.int16, bitcast=True) & tl.full([], 0x7FFF, tl.int16)
            special = bits >= tl.full([], INF, tl.int16)
        v = tl.minimum(tl.maximum(xf * scale, -FMAX), FMAX)
        v = tl.where(special, float("nan"), v)
        return _to_fp8(v, E5M2, OUT_FP32), bits

    @triton.jit
    def _amax_bits(m, INF: tl.constexpr, FP16: tl.constexpr, BITS32: tl.constexpr):
        """float32 bits of the amax from the largest magnitude bits ``m`` (int32 scalar)."""
        if BITS32:
            return tl.minimum(m, 0x7F800000)  # NaN counts as inf
        m = tl.minimum(m, INF)
        if FP16:
            a = m.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
            return a.to(tl.int32, bitcast=True)
        return m << 16  # bf16 -> float32 bits

    @triton.jit
    def _spec_first_kernel(
        x_ptr, scale_ptr, q_ptr, qt_ptr, amax_ptr, M, N,
        FMAX: tl.constexpr, INF: tl.constexpr, FP16: tl.constexpr, E5M2: tl.constexpr,
        OUT_FP32: tl.constexpr, WRITE_T: tl.constexpr, EVEN: tl.constexpr,
        BM: tl.constexpr, BN: tl.constexpr, GROUP: tl.constexpr, AMAX: tl.constexpr,
        TMA: tl.constexpr, TMODE: tl.constexpr, STAGES: tl.constexpr, BITS32: tl.constexpr,
        LEAN: tl.constexpr = False,
    ):  # fmt: skip
        pid = tl.program_id(0)
        nprog = tl.num_programs(0)
        n_m = tl.cdiv(M, BM)
        n_n = tl.cdiv(N, BN)
        n_tiles = n_m * n_n
        per_group = GROUP * n_n
        scale = tl.load(scale_ptr)
        if LEAN:
            acc = tl.zeros([BM, BN], dtype=tl.float32)
        elif AMAX == 1:
            acc = tl.zeros([BM, BN], dtype=tl.int32 if BITS32 else tl.int16)
        else:
            acc = tl.full([], 0, tl.int32)
        for tile in tl.range(pid, n_tiles, nprog, num_stages=STAGES):
            g = tile // per_group
            first_m = g * GROUP
            gsize = tl.minimum(n_m - first_m, GROUP)
            pid_m = first_m + (tile % per_group) % gsize
            pid_n = (tile % per_group) // gsize
            if TMA:
                xh = x_ptr.load([pid_m * BM, pid_n * BN])
            else:
                rm = pid_m.to(tl.int64) * BM + tl.arange(0, BM)
                rn = pid_n.to(tl.int64) * BN + tl.arange(0, BN)
                rm = tl.max_contiguous(tl.multiple_of(rm, BM), BM)
                rn = tl.max_contiguous(tl.multiple_of(rn, BN), BN)
                if EVEN:
                    xh = tl.load(x_ptr + rm[:, None] * N + rn[None, :])
                else:
                    mask = (rm[:, None] < M) & (rn[None, :] < N)
                    xh = tl.load(x_ptr + rm[:, None] * N + rn[None, :], mask=mask, other=0.0)
            if LEAN:  # no clamp, no inf/NaN test: the check pass recasts if either mattered
                xf = xh.to(tl.float32)
                qo = _to_fp8(xf * scale, E5M2, OUT_FP32)
                acc = tl.maximum(acc, tl.abs(xf), propagate_nan=tl.PropagateNan.ALL)
            else:
                qo, bits = _cast_tile(xh, scale, FMAX, INF, E5M2, OUT_FP32, BITS32)
                if AMAX == 1:
                    acc = tl.maximum(acc, bits)
                elif AMAX == 2:  # axis by axis, as the general kernel reduces its tiles
                    acc = tl.maximum(acc, tl.max(tl.max(bits.to(tl.int32), 1), 0))
                else:
                    acc = tl.maximum(acc, tl.max(bits.to(tl.int32)))
            if WRITE_T:
                if TMODE == 2 and LEAN:
                    qto = _to_fp8(tl.trans(xh).to(tl.float32) * scale, E5M2, OUT_FP32)
                elif TMODE == 2:  # transpose the 16-bit tile, cast it again (same bytes)
                    qto, _b = _cast_tile(tl.trans(xh), scale, FMAX, INF, E5M2, OUT_FP32, BITS32)
                else:
                    qto = tl.trans(qo)
            if TMA:
                q_ptr.store([pid_m * BM, pid_n * BN], qo)
                if WRITE_T:
                    qt_ptr.store([pid_n * BN, pid_m * BM], qto)
            else:
                if EVEN:
                    tl.store(q_ptr + rm[:, None] * N + rn[None, :], qo)
                else:
                    tl.store(q_ptr + rm[:, None] * N + rn[None, :], qo, mask=mask)
                if WRITE_T:
                    qt_ptrs = qt_ptr + rn[:, None] * M + rm[None, :]
                    if EVEN:
                        tl.store(qt_ptrs, qto)
                    else:
                        tl.store(qt_ptrs, qto, mask=(rn[:, None] < N) & (rm[None, :] < M))
        if LEAN:  # float32 bits of |x| order like the values, NaN above inf: NaN counts as inf
            abits = tl.minimum(tl.max(acc.to(tl.int32, bitcast=True) & 0x7FFFFFFF), 0x7F800000)
        elif AMAX == 1:
            abits = _amax_bits(tl.max(acc.to(tl.int32)), INF, FP16, BITS32)
        else:
            abits = _amax_bits(acc, INF, FP16, BITS32)
        bits_ptr = amax_ptr.to(tl.pointer_type(tl.int32), bitcast=True)
        # relaxed: the kernel boundary orders it before the check pass reads the amax
        tl.atomic_max(bits_ptr, abits, sem="relaxed")

    @triton.jit
    def _phase(x_ptr, q_ptr, r4, rn, M, N, scale, J: tl.constexpr, FMAX: tl.constexpr,
               INF: tl.constexpr, E5M2: tl.constexpr, EVEN: tl.constexpr,
               BITS32: tl.constexpr):  # fmt: skip
        """Rows 4*r4 + J of a tile: cast, store row-major; their bytes shifted to byte J of a
        32-bit word, and their magnitude bits."""
        rows = r4 * 4 + J
        ptrs = rows[:, None] * N + rn[None, :]
        if EVEN:
            xh = tl.load(x_ptr + ptrs)
        else:
            mask = (rows[:, None] < M) & (rn[None, :] < N)
            xh = tl.load(x_ptr + ptrs, mask=mask, other=0.0)
        qo, bits = _cast_tile(xh, scale, FMAX, INF, E5M2, False, BITS32)
        if EVEN:
            tl.store(q_ptr + ptrs, qo)
        else:
            tl.store(q_ptr + ptrs, qo, mask=mask)
        word = qo.to(tl.uint8, bitcast=True).to(tl.uint32) << (8 * J)
        return word, bits

    @triton.jit
    def _spec_first_packed_kernel(
        x_ptr, scale_ptr, q_ptr, qt32_ptr, amax_ptr, M, N,
        FMAX: tl.constexpr, INF: tl.constexpr, FP16: tl.constexpr, E5M2: tl.constexpr,
        EVEN: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, GROUP: tl.constexpr,
        STAGES: tl.constexpr, BITS32: tl.constexpr,
    ):  # fmt: skip
        """tmode 3: rows 4i..4i+3 of a tile are loaded as four (BM/4, BN) tiles; their FP8
        bytes are packed into one 32-bit word per column, so the transposed copy moves 32-bit
        elements (the words are the transposed copy's bytes in memory order). M % 4 == 0."""
        pid = tl.program_id(0)
        nprog = tl.num_programs(0)
        n_m = tl.cdiv(M, BM)
        n_n = tl.cdiv(N, BN)
        per_group = GROUP * n_n
        m4 = M // 4
        scale = tl.load(scale_ptr)
        # elementwise, reduced once at the end
        acc = tl.zeros([BM // 4, BN], dtype=tl.int32 if BITS32 else tl.int16)
        for tile in tl.range(pid, n_m * n_n, nprog, num_stages=STAGES):
            g = tile // per_group
            first_m = g * GROUP
            gsize = tl.minimum(n_m - first_m, GROUP)
            pid_m = first_m + (tile % per_group) % gsize
            pid_n = (tile % per_group) // gsize
            r4 = pid_m.to(tl.int64) * (BM // 4) + tl.arange(0, BM // 4)
            rn = pid_n.to(tl.int64) * BN + tl.arange(0, BN)
            rn = tl.max_contiguous(tl.multiple_of(rn, BN), BN)
            w0, a0 = _phase(x_ptr, q_ptr, r4, rn, M, N, scale, 0, FMAX, INF, E5M2, EVEN, BITS32)
            w1, a1 = _phase(x_ptr, q_ptr, r4, rn, M, N, scale, 1, FMAX, INF, E5M2, EVEN, BITS32)
            w2, a2 = _phase(x_ptr, q_ptr, r4, rn, M, N, scale, 2, FMAX, INF, E5M2, EVEN, BITS32)
            w3, a3 = _phase(x_ptr, q_ptr, r4, rn, M, N, scale, 3, FMAX, INF, E5M2, EVEN, BITS32)
            acc = tl.maximum(acc, tl.maximum(tl.maximum(a0, a1), tl.maximum(a2, a3)))
            words = tl.trans((w0 | w1 | w2 | w3).to(tl.int32, bitcast=True))
            t_ptrs = qt32_ptr + rn[:, None] * m4 + r4[None, :]
            if EVEN:
                tl.store(t_ptrs, words)
            else:
                tl.store(t_ptrs, words, mask=(rn[:, None] < N) & (r4[None, :] < m4))
        abits = _amax_bits(tl.max(acc.to(tl.int32)), INF, FP16, BITS32)
        bits_ptr = amax_ptr.to(tl.pointer_type(tl.int32), bitcast=True)
        tl.atomic_max(bits_ptr, abits, sem="relaxed")

    @functools.cache
    def _inline_first(cfg: SpecConfig):
        """A one-config autotuner of the kernel (launch options for ``wrap_triton``)."""
        c = triton.Config(
            {"BM": cfg.bm, "BN": cfg.bn, "GROUP": cfg.group, "AMAX": cfg.amax, "TMA": False,
             "TMODE": cfg.tmode, "STAGES": cfg.stages, "BITS32": bool(cfg.bits32),
             "LEAN": bool(cfg.lean)},
            num_warps=cfg.warps,
        )  # fmt: skip
        return triton.autotune(configs=[c], key=["M", "N"])(_spec_first_kernel)


def launch_spec_first(
    x: torch.Tensor,
    scale: torch.Tensor,
    q: torch.Tensor,
    qt: torch.Tensor | None,
    amax: torch.Tensor,
    fmt: str,
    fmax: float,
    cfg: SpecConfig,
    wrap=None,
) -> None:
    """Cast ``x`` (M, N) with the float32 one-element ``scale`` into ``q`` (M, N) and, unless
    ``qt`` is None, ``qt`` (N, M); raise the float32 0-d ``amax`` (zero-initialised by the
    caller) to the input's amax. ``q``/``qt`` of dtype float32 receive the saturated scaled
    values instead of FP8 (interpreter tests). ``wrap``: ``torch.library.wrap_triton`` inside
    a ``triton_op`` (pointer loads and stores then, no tensor descriptors)."""
    m, n = x.shape
    if m * n == 0:
        return
    if cfg.tmode not in (0, 2, 3) or cfg.amax not in (0, 1, 2):
        raise ValueError(f"SpecConfig needs tmode 0, 2 or 3 and amax 0, 1 or 2, got {cfg}")
    tiles = triton.cdiv(m, cfg.bm) * triton.cdiv(n, cfg.bn)
    if x.is_cuda:
        grid = (_grid_size(tiles, cfg.waves, x.device),)
    else:  # interpreter: ``waves`` programs in all, so that the tile loop runs several times
        grid = (min(tiles, cfg.waves) if cfg.waves > 0 else tiles,)
    write_t = qt is not None
    if cfg.lean and not lean_ok(cfg):
        raise ValueError(f"SpecConfig lean=1 needs the pointer kernel with tmode 0 or 2, got {cfg}")
    if cfg.tmode == 3 and packed_ok(x, q, qt) and wrap is None:
        _spec_first_packed_kernel[grid](
            x, scale, q, qt.view(torch.int32), amax, m, n, FMAX=fmax,
            INF=0x7C00 if x.dtype == torch.float16 else 0x7F80, FP16=x.dtype == torch.float16,
            E5M2=fmt == "e5m2", EVEN=(m % cfg.bm == 0) and (n % cfg.bn == 0), BM=cfg.bm,
            BN=cfg.bn, GROUP=cfg.group, STAGES=cfg.stages, BITS32=bool(cfg.bits32),
            num_warps=cfg.warps,
        )  # fmt: skip
        return
    if cfg.tmode == 3:  # not applicable: the FP8 tile is transposed instead
        cfg = dataclasses.replace(cfg, tmode=0)
    use_tma = bool(cfg.tma) and tma_ok(m, n) and wrap is None and x.data_ptr() % 16 == 0
    if use_tma:
        from triton.tools.tensor_descriptor import TensorDescriptor

        xa = TensorDescriptor.from_tensor(x, [cfg.bm, cfg.bn])
        qa = TensorDescriptor.from_tensor(q, [cfg.bm, cfg.bn])
        qta = TensorDescriptor.from_tensor(qt, [cfg.bn, cfg.bm]) if write_t else qa
    else:  # without a transposed copy x stands in for qt (never written): distinct arguments
        xa, qa, qta = x, q, (qt if write_t else x)
    consts = dict(
        FMAX=fmax, INF=0x7C00 if x.dtype == torch.float16 else 0x7F80,
        FP16=x.dtype == torch.float16, E5M2=fmt == "e5m2", OUT_FP32=q.dtype == torch.float32,
        WRITE_T=write_t, EVEN=(m % cfg.bm == 0) and (n % cfg.bn == 0),
    )  # fmt: skip
    if wrap is not None:
        wrap(_inline_first(cfg))[grid](xa, scale, qa, qta, amax, m, n, **consts)
        return
    _spec_first_kernel[grid](
        xa, scale, qa, qta, amax, m, n, **consts,
        BM=cfg.bm, BN=cfg.bn, GROUP=cfg.group, AMAX=cfg.amax, TMA=use_tma, TMODE=cfg.tmode,
        STAGES=cfg.stages, BITS32=bool(cfg.bits32), LEAN=bool(cfg.lean), num_warps=cfg.warps,
    )  # fmt: skip
