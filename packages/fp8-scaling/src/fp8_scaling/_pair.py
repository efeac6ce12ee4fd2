"""JIT FP8 casts of one or two tensors (the forward's input X and weight W) in two launches.

The JIT recipe (Perez et al. 2023, Section 3: a power-of-two scale from each tensor's current
amax) needs an amax pass before each cast. Cast one tensor at a time with an atomic amax and the
forward issues a zero fill, an amax launch and a cast launch per tensor; at 4096^3 the compiled
layer is bound by the host time of such launches, not by the GPU. Here:

1. one launch reduces both tensors: program ``p`` walks the blocks of X, then of W, with a grid
   stride and writes its two partial maxima to ``partials[p, 0:2]`` (no atomics, so the buffer
   needs no zero fill);
2. one launch casts both tensors in both layouts (programs ``[0, tiles(X))`` take X's tiles, the
   rest W's); every program first reduces the (at most a few hundred) partials of its tensor,
   which sit in L2, to the amax, derives the power-of-two scale from its exponent bits and casts
   its tile. The first program of each tensor writes the amax and ``2**-bias``.

So X and W cost two launches instead of six, and a lone tensor (the gradient, ``b=None``) two
instead of three. Pure-torch reference: :func:`fp8_scaling._cast_ops.cast_transpose_ref`.
"""

from __future__ import annotations

import functools

import torch

from ._fastcast import CastConfig
from ._kernels import HAS_TRITON, _cast_consts, _sm_count

if HAS_TRITON:
    import triton
    import triton.language as tl

__all__ = ["DEFAULT_PAIR", "launch_amax_pair", "launch_cast_pair"]

# amax: elements per block, warps, programs per SM (the tuned single-tensor amax on the H200)
_AMAX_BLOCK, _AMAX_WARPS, _AMAX_WAVES = 8192, 8, 4
DEFAULT_PAIR = CastConfig(bm=64, bn=128, warps=4, group=8)  # the H200's tuned 8192^2 JIT tile


if HAS_TRITON:

    @triton.jit
    def _absmax_block(ptr, blk, n, BLOCK: tl.constexpr):
        offs = blk * tl.full([], BLOCK, tl.int64) + tl.arange(0, BLOCK)  # n may exceed 2**31
        a = tl.abs(tl.load(ptr + offs, mask=offs < n, other=0.0).to(tl.float32))
        return tl.where(a != a, float("inf"), a)  # NaN counts as inf

    @triton.jit
    def _amax_pair_kernel(a_ptr, b_ptr, part_ptr, na, nb, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        nprog = tl.num_programs(0)
        blocks_a = tl.cdiv(na, BLOCK)
        total = blocks_a + tl.cdiv(nb, BLOCK)
        acc_a = tl.zeros([BLOCK], dtype=tl.float32)
        acc_b = tl.zeros([BLOCK], dtype=tl.float32)
        for blk in range(pid, total, nprog):
            if blk < blocks_a:
                acc_a = tl.maximum(acc_a, _absmax_block(a_ptr, blk, na, BLOCK))
            else:
                acc_b = tl.maximum(acc_b, _absmax_block(b_ptr, blk - blocks_a, nb, BLOCK))
        tl.store(part_ptr + 2 * pid, tl.max(acc_a, 0))
        tl.store(part_ptr + 2 * pid + 1, tl.max(acc_b, 0))

    @triton.jit
    def _cast_tile(
        x_ptr, part_ptr, q_ptr, qt_ptr, inv_ptr, amax_ptr, M, N, tile, NP,
        FMAX: tl.constexpr, EF: tl.constexpr, MF: tl.constexpr, MARGIN: tl.constexpr,
        WRITE_T: tl.constexpr, OUT_FP32: tl.constexpr, E5M2: tl.constexpr,
        BM: tl.constexpr, BN: tl.constexpr, GROUP: tl.constexpr, NP_BLOCK: tl.constexpr,
        EVEN: tl.constexpr,
    ):  # fmt: skip
        offs = tl.arange(0, NP_BLOCK)  # this tensor's partial maxima (stride 2)
        am = tl.max(tl.load(part_ptr + 2 * offs, mask=offs < NP, other=0.0), 0)
        bits = am.to(tl.int32, bitcast=True)
        ea = (bits >> 23) & 0xFF
        ma = bits & 0x7FFFFF
        b = EF - ea - (ma > MF).to(tl.int32)
        b = tl.where(ea == 0, 1000, b)  # zero and float32 subnormals: clipped to +31
        b = tl.where((ea == 255) & (ma == 0), -1000, b)  # inf (and NaN, counted as inf): -31
        b = tl.minimum(tl.maximum(b - MARGIN, -31), 31)
        scale = ((b + 127) << 23).to(tl.float32, bitcast=True)  # exact 2**b
        if tile == 0:
            tl.store(inv_ptr, 1.0 / scale)  # exact: a power of two
            tl.store(amax_ptr, am)
        n_m = tl.cdiv(M, BM)
        n_n = tl.cdiv(N, BN)
        per_group = GROUP * n_n  # grouped order: neighbours share panels of the transposed copy
        first_m = (tile // per_group) * GROUP
        gsize = tl.minimum(n_m - first_m, GROUP)
        pid_m = first_m + (tile % per_group) % gsize
        pid_n = (tile % per_group) // gsize
        rm = pid_m.to(tl.int64) * BM + tl.arange(0, BM)
        rn = pid_n.to(tl.int64) * BN + tl.arange(0, BN)
        mask = (rm[:, None] < M) & (rn[None, :] < N)
        if EVEN:  # every tile full: no masks
            x = tl.load(x_ptr + rm[:, None] * N + rn[None, :]).to(tl.float32)
        else:
            x = tl.load(x_ptr + rm[:, None] * N + rn[None, :], mask=mask, other=0.0)
            x = x.to(tl.float32)
        q = tl.minimum(tl.maximum(x * scale, -FMAX), FMAX)
        q = tl.where((tl.abs(x) == float("inf")) | (x != x), float("nan"), q)
        if OUT_FP32:
            qo = q
        elif E5M2:
            qo = q.to(tl.float8e5)
        else:
            qo = q.to(tl.float8e4nv)
        if EVEN:
            tl.store(q_ptr + rm[:, None] * N + rn[None, :], qo)
            if WRITE_T:
                tl.store(qt_ptr + rn[:, None] * M + rm[None, :], tl.trans(qo))
        else:
            tl.store(q_ptr + rm[:, None] * N + rn[None, :], qo, mask=mask)
            if WRITE_T:
                tl.store(qt_ptr + rn[:, None] * M + rm[None, :], tl.trans(qo), mask=mask.T)

    @triton.jit
    def _cast_pair_kernel(
        a_ptr, b_ptr, part_ptr, qa_ptr, qta_ptr, qb_ptr, qtb_ptr, inva_ptr, invb_ptr,
        amaxa_ptr, amaxb_ptr, MA, NA, MB, NB, NP,
        FMAX: tl.constexpr, EF: tl.constexpr, MF: tl.constexpr, MARGIN: tl.constexpr,
        TA: tl.constexpr, TB: tl.constexpr, OUT_FP32: tl.constexpr, E5M2: tl.constexpr,
        BM: tl.constexpr, BN: tl.constexpr, GROUP: tl.constexpr, NP_BLOCK: tl.constexpr,
        EVEN: tl.constexpr, HAS_B: tl.constexpr,
    ):  # fmt: skip
        pid = tl.program_id(0)
        tiles_a = tl.cdiv(MA, BM) * tl.cdiv(NA, BN)
        if pid < tiles_a:
            _cast_tile(a_ptr, part_ptr, qa_ptr, qta_ptr, inva_ptr, amaxa_ptr, MA, NA, pid, NP,
                       FMAX, EF, MF, MARGIN, TA, OUT_FP32, E5M2, BM, BN, GROUP,
                       NP_BLOCK, EVEN)  # fmt: skip
        elif HAS_B:  # compiled out for a lone tensor: b's placeholder pointers are never used
            _cast_tile(b_ptr, part_ptr + 1, qb_ptr, qtb_ptr, invb_ptr, amaxb_ptr, MB, NB,
                       pid - tiles_a, NP, FMAX, EF, MF, MARGIN, TB, OUT_FP32, E5M2, BM, BN,
                       GROUP, NP_BLOCK, EVEN)  # fmt: skip

    @functools.cache
    def _inline(which: str, cfg: CastConfig | None = None):
        """One-config autotuners (launch constants in the config) for launches traced by
        torch.compile through ``torch.library.wrap_triton``, as in :mod:`._fastcast`."""
        if which == "amax":
            c = triton.Config({"BLOCK": _AMAX_BLOCK}, num_warps=_AMAX_WARPS)
            return triton.autotune(configs=[c], key=["na", "nb"])(_amax_pair_kernel)
        c = triton.Config({"BM": cfg.bm, "BN": cfg.bn, "GROUP": cfg.group}, num_warps=cfg.warps)
        return triton.autotune(configs=[c], key=["MA", "NA", "MB", "NB", "NP"])(_cast_pair_kernel)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    ok = (
        a.dim() == 2 and b.dim() == 2 and a.is_contiguous() and b.is_contiguous()
        and a.dtype == b.dtype and a.device == b.device
    )  # fmt: skip
    if not ok:
        raise ValueError(
            "the pair kernels need two contiguous 2-D tensors of one dtype on one device, got "
            f"{tuple(a.shape)} {a.dtype} {a.device} and {tuple(b.shape)} {b.dtype} {b.device}"
        )


def launch_amax_pair(
    a: torch.Tensor,
    b: torch.Tensor | None = None,
    wrap=None,
    block: int = _AMAX_BLOCK,
    programs: int | None = None,
) -> torch.Tensor:
    """Partial absolute maxima of ``a`` and ``b`` (NaN counts as inf) in one launch.

    Returns float32 ``(P, 2)``: row ``p`` holds program ``p``'s maxima of ``a`` and ``b``
    (the amax of ``a`` is ``out[:, 0].max()``); :func:`launch_cast_pair` takes it as is.
    ``b=None``: ``a`` alone. ``wrap``: ``torch.library.wrap_triton`` inside a ``triton_op``;
    ``block`` (elements per step) and ``programs`` (grid size) only for tests.
    """
    single = b is None
    b = a if single else b  # a lone tensor: b's pointer is a's, with no elements
    _check_pair(a, b)
    na, nb = a.numel(), 0 if single else b.numel()
    blocks = max(1, triton.cdiv(na, block) + triton.cdiv(nb, block))
    progs = blocks
    if programs is not None:
        progs = max(1, min(blocks, programs))
    elif a.is_cuda:
        progs = min(blocks, _sm_count(a.device.index or 0) * _AMAX_WAVES)
    part = torch.empty((progs, 2), dtype=torch.float32, device=a.device)
    if wrap is not None:
        if block != _AMAX_BLOCK:
            raise ValueError("a traced launch uses the default block")
        wrap(_inline("amax"))[(progs,)](a, b, part, na, nb)
    else:
        _amax_pair_kernel[(progs,)](a, b, part, na, nb, BLOCK=block, num_warps=_AMAX_WARPS)
    return part


def launch_cast_pair(
    a: torch.Tensor,
    b: torch.Tensor | None,
    partials: torch.Tensor,
    fmt_name: str,
    fmax: float,
    margin: int,
    transpose_a: bool,
    transpose_b: bool,
    cfg: CastConfig = DEFAULT_PAIR,
    out_fp32: bool = False,
    wrap=None,
) -> tuple[torch.Tensor, ...]:
    """JIT power-of-two FP8 casts of ``a`` (MA, NA) and ``b`` (MB, NB) in one launch.

    ``partials``: ``(P, 2)`` from :func:`launch_amax_pair`. Returns ``(qa (MA, NA), qta (NA, MA)
    or (0, 0), inv_a, amax_a, qb, qtb, inv_b, amax_b)``, ``inv = 2**-bias`` and the amax
    float32 of shape (1,) per tensor (separate tensors; not 0-d, because inductor lowers a 0-d
    ``torch.empty`` to a kernel that writes a zero, one extra launch each); with ``b=None`` the
    four ``b`` entries are ``None``.
    ``out_fp32`` writes the saturated scaled float32 values instead of FP8 (interpreter tests).
    """
    single = b is None
    b = a if single else b  # a lone tensor: b's pointers are a's, with no rows
    _check_pair(a, b)
    if fmt_name not in ("e4m3", "e5m2"):
        raise ValueError(f"the pair cast supports 'e4m3' and 'e5m2', got {fmt_name!r}")
    consts = _cast_consts(fmt_name, fmax, margin, False, True, out_fp32)
    dt = torch.float32 if out_fp32 else (torch.float8_e5m2 if consts["E5M2"] else
                                          torch.float8_e4m3fn)  # fmt: skip
    (ma, na), (mb, nb) = a.shape, ((0, 0) if single else b.shape)
    dev = a.device
    qa = torch.empty((ma, na), dtype=dt, device=dev)
    qta = torch.empty((na, ma) if transpose_a else (0, 0), dtype=dt, device=dev)
    # the first tile of each tensor writes its inv and amax; an empty tensor has none: NaN
    inva, amaxa = (torch.empty((1,), dtype=torch.float32, device=dev) for _ in range(2))
    if a.numel() == 0:
        inva.fill_(float("nan"))
        amaxa.fill_(float("nan"))
    qb = qtb = invb = amaxb = None  # a lone tensor: nothing allocated for b
    if not single:
        qb = torch.empty((mb, nb), dtype=dt, device=dev)
        qtb = torch.empty((nb, mb) if transpose_b else (0, 0), dtype=dt, device=dev)
        invb, amaxb = (torch.empty((1,), dtype=torch.float32, device=dev) for _ in range(2))
        if b.numel() == 0:
            invb.fill_(float("nan"))
            amaxb.fill_(float("nan"))
    tiles = triton.cdiv(ma, cfg.bm) * triton.cdiv(na, cfg.bn)
    tiles += triton.cdiv(mb, cfg.bm) * triton.cdiv(nb, cfg.bn)
    if tiles == 0:
        return qa, qta, inva, amaxa, qb, qtb, invb, amaxb
    n_part = partials.shape[0]
    # Placeholders for pointers the kernel never touches (b's when b is None, the transposed
    # copy when not asked for): the read-only input ``a``, never an output. Passing one output
    # buffer as two arguments makes torch.compile's functionalization of the launch clone it
    # and hand back the (unwritten) clone as the op's output.
    if single:
        b_args = (a, a, a, a, a)
    else:
        b_args = (b, qb, qtb if transpose_b else a, invb, amaxb)
    args = (a, b_args[0], partials, qa, qta if transpose_a else a, b_args[1], b_args[2], inva,
            b_args[3], amaxa, b_args[4], ma, na, mb, nb, n_part)  # fmt: skip
    even = all(d % cfg.bm == 0 for d in (ma, mb)) and all(d % cfg.bn == 0 for d in (na, nb))
    kw = dict(FMAX=consts["FMAX"], EF=consts["EF"], MF=consts["MF"], MARGIN=int(margin),
              TA=transpose_a, TB=transpose_b and not single, OUT_FP32=out_fp32, E5M2=consts["E5M2"],
              NP_BLOCK=triton.next_power_of_2(n_part), EVEN=even, HAS_B=not single)  # fmt: skip
    if wrap is not None:
        wrap(_inline("cast", cfg))[(tiles,)](*args, **kw)
    else:
        _cast_pair_kernel[(tiles,)](
            *args, **kw, BM=cfg.bm, BN=cfg.bn, GROUP=cfg.group, num_warps=cfg.warps
        )
    return qa, qta, inva, amaxa, qb, qtb, invb, amaxb
