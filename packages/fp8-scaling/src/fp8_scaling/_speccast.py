"""JIT cast in one pass over the input when the scale is unchanged: reuse, then verify.

The just-in-time recipe (Perez et al. 2023, Section 3, FP8-AMAX) needs the amax of a tensor
before any element can be cast, so the plain route reads the input twice (amax pass, cast pass).
The power-of-two scale ``2**bias`` only changes when the amax crosses a power of two, which in
most steps it does not (``benchmarks/spec_hit_rate.py``). This route therefore

1. casts the tensor (both layouts) with the scale of the previous step -- the *guess* -- and
   measures the amax in the same pass (the one-pass kernel of the delayed recipe), then
2. launches a second kernel that derives the JIT scale from that amax exactly as the JIT cast
   does; when it equals the guess (the FP8 bytes already written are the JIT bytes) every
   program exits at once, otherwise it casts the tensor again with the JIT scale. It also
   recasts when the amax is inf or NaN, or so large that the bias was clipped at -31 (values
   saturate): the lean first pass neither clamps nor maps inf to NaN.

The result is bit-identical to the two-pass JIT cast in every case (same amax, same scale, same
saturating cast); only the traffic differs: one read of the input instead of two when the guess
holds; two reads and two writes of the FP8 copies when it does not (8 bytes per bf16 element
instead of 6), so the route pays off while the guess holds more than half the time. The new
scale is returned so the caller can store it as the next guess. NaN in the input counts as inf
in the amax, as in the two-pass cast (the output holds NaN there); a NaN guess never equals a
scale, so it takes the recast.

Operator ``fp8_scaling::spec_cast(x, guess, fmt, margin, transpose) -> (q, qt, inv, amax,
scale)`` for a contiguous 2-D bf16/fp16 tensor ``x`` (M, N): ``q`` (M, N) and ``qt`` (N, M)
(``(0, 0)`` without ``transpose``) in ``fmt``'s dtype, float32 0-d ``inv = 2**-bias``, ``amax``
and ``scale = 2**bias``; ``guess`` is a float32 one-element tensor (any value; NaN/0 just take
the slow path). The pure-torch reference is :func:`spec_cast_ref` (the JIT cast itself).
"""

from __future__ import annotations

import dataclasses

import torch

from . import _tuned
from ._cast_ops import fake_fp8_outputs
from ._fastcast import CastConfig, _cast2_kernel, _grid_size, _inline_cast
from ._formats import FORMATS
from ._kernels import HAS_TRITON, _cast_consts
from ._scaling import amax as amax_ref
from ._spec_first import SpecConfig, launch_spec_first, lean_ok

if HAS_TRITON:
    import triton

HAS_TRITON_OP = hasattr(torch.library, "triton_op") and hasattr(torch.library, "wrap_triton")
if HAS_TRITON_OP:
    from torch.library import wrap_triton

__all__ = ["launch_spec_cast", "spec_cast_impl", "spec_cast_ok", "spec_cast_op", "spec_cast_ref"]

_DEFAULT = CastConfig(bm=64, bn=128, warps=4)  # the H200's tuned JIT cast tile (8192^2)
# Programs per SM of the first pass (None: the configuration's own ``waves``; with waves=0,
# one program per tile, each publishing its amax with one atomic); the second pass always
# walks the tiles with a persistent grid of FIXUP_WAVES programs per SM, so when the guess
# holds only that many programs start and exit.
SPEC_WAVES: int | None = None
FIXUP_WAVES = 8
# Tile configuration of both passes when set (None: the tuned JIT cast entry of this GPU and
# shape, else _DEFAULT); benchmarks/bench_fp8_graph.py (case cast_spec_graph) compares them.
SPEC_CONFIG: CastConfig | None = None
# First-pass kernel when set: a SpecConfig runs fp8_scaling._spec_first's kernel, a CastConfig
# the general cast kernel; None: the tuned table's "cast_spec" entry of this GPU and shape, else
# the general kernel with the tile configuration above (benchmarks/cast_bw.py compares them).
SPEC_FIRST: SpecConfig | CastConfig | None = None
# A SpecConfig first pass (pointer kernel, tmode 0 or 2) runs with ``lean=1`` when set: no clamp
# and no inf/NaN test in the first pass (fp8_scaling._spec_first; the check pass recasts
# whenever those could have mattered).
LEAN_FIRST = False


def spec_cast_ref(x: torch.Tensor, guess: torch.Tensor, fmt: str, margin: int, transpose: bool):
    """Pure-torch reference: the two-pass JIT cast (the guess does not change the result)."""
    from ._cast_ops import cast_transpose_ref

    a = amax_ref(x).float()
    q, qt, inv = cast_transpose_ref(x, a, fmt, margin, transpose)
    return q, qt, inv, a, torch.reciprocal(inv)


def spec_cast_ok(x: torch.Tensor, fmt: str) -> bool:
    """Whether :func:`spec_cast_impl` runs the Triton kernels for ``x`` (else the reference)."""
    return (
        HAS_TRITON
        and x.is_cuda
        and fmt in ("e4m3", "e5m2")
        and x.dim() == 2
        and x.element_size() == 2
        and x.is_contiguous()
        and x.numel() > 0
    )


def launch_spec_cast(
    x: torch.Tensor,
    fmt: str,
    guess: torch.Tensor,
    margin: int = 0,
    transpose: bool = True,
    cfg: CastConfig | None = None,
    out_fp32: bool = False,
    first: SpecConfig | CastConfig | None = None,
    wrap=None,
):
    """The two launches of the module docstring; returns ``(q, qt, inv, amax, scale)``.

    ``cfg``: tile configuration of both launches (default: the tuned JIT cast configuration
    for this GPU and shape, else 64x128 tiles with 4 warps). ``first``: the first pass's kernel
    (a :class:`SpecConfig`: :mod:`fp8_scaling._spec_first`; default ``SPEC_FIRST``, else the
    tuned ``cast_spec`` entry, else the general kernel with ``cfg``). ``out_fp32`` writes the
    saturated scaled float32 values instead of FP8 (interpreter tests). ``wrap``:
    ``torch.library.wrap_triton`` inside a ``triton_op`` (every kernel argument is then a
    distinct tensor, and the first pass uses pointers, not tensor descriptors).
    """
    if x.dim() != 2 or not x.is_contiguous() or x.element_size() != 2:
        raise ValueError(
            f"launch_spec_cast needs a contiguous 2-D bf16/fp16 tensor, got shape "
            f"{tuple(x.shape)}, dtype {x.dtype}, contiguous {x.is_contiguous()}"
        )
    if fmt not in ("e4m3", "e5m2"):
        raise ValueError(f"launch_spec_cast supports 'e4m3' and 'e5m2', got {fmt!r}")
    if cfg is None:
        cfg = SPEC_CONFIG or (_tuned.cast_config(x, delayed=False) if x.is_cuda else None)
        cfg = cfg or _DEFAULT
    if first is None:
        traced = wrap is not None
        first = SPEC_FIRST or (_tuned.spec_first_config(x, traced) if x.is_cuda else None)
    if isinstance(first, CastConfig):
        cfg, first = first, None
    if LEAN_FIRST and first is not None and lean_ok(first):
        first = dataclasses.replace(first, lean=1)
    m, n = x.shape
    dev = x.device
    odt = torch.float32 if out_fp32 else FORMATS[fmt].dtype
    q = torch.empty((m, n), dtype=odt, device=dev)
    qt = torch.empty((n, m) if transpose else (0, 0), dtype=odt, device=dev)
    amax = torch.zeros((), dtype=torch.float32, device=dev)
    inv = torch.empty((), dtype=torch.float32, device=dev)
    scale = torch.empty((), dtype=torch.float32, device=dev)
    g = guess.reshape(()).float()
    fmax = FORMATS[fmt].max
    tiles = triton.cdiv(m, cfg.bm) * triton.cdiv(n, cfg.bn)
    grid2 = (_grid_size(tiles, FIXUP_WAVES, dev),)
    even = (m % cfg.bm == 0) and (n % cfg.bn == 0)
    tile = dict(BM=cfg.bm, BN=cfg.bn, GROUP=cfg.group, TMODE=cfg.tmode, STAGES=cfg.stages)
    # unused pointer arguments get a tensor of their own: a traced launch (wrap_triton) must
    # not see one output buffer as two arguments (functionalization would return a clone)
    qt_arg = qt if transpose else x
    # 1. cast with the guessed scale, amax of x in the same pass
    first_pass(x, g, q, qt if transpose else None, amax, fmt, margin, cfg, first, wrap)
    # 2. JIT scale from that amax; recast only where it differs from the guess
    c2 = _cast_consts(fmt, fmax, margin, False, transpose, out_fp32)
    c2.update(REVERSE=False, EVEN=even, TILE_MAX=False, FIXUP=True)
    if wrap is not None:
        wrap(_inline_cast(cfg))[grid2](x, amax, g, q, qt_arg, inv, scale, m, n, **c2)
    else:
        _cast2_kernel[grid2](
            x, amax, g, q, qt_arg, inv, scale, m, n, **c2, **tile, num_warps=cfg.warps
        )  # fmt: skip
    return q, qt, inv, amax, scale


def first_pass(x, g, q, qt, amax, fmt: str, margin: int, cfg: CastConfig, first, wrap=None):
    """The first launch of :func:`launch_spec_cast` alone: cast ``x`` with the scale at ``g``
    into ``q`` and ``qt`` (None: no transposed copy), raise ``amax`` (zeroed) to x's amax.
    ``first``: a :class:`SpecConfig` (kernel of :mod:`fp8_scaling._spec_first`) or None (the
    general kernel with the tile ``cfg``)."""
    fmax = FORMATS[fmt].max
    if first is not None:
        launch_spec_first(x, g, q, qt, amax, fmt, fmax, first, wrap=wrap)
        return
    m, n = x.shape
    tiles = triton.cdiv(m, cfg.bm) * triton.cdiv(n, cfg.bn)
    grid = (_grid_size(tiles, cfg.waves if SPEC_WAVES is None else SPEC_WAVES, x.device),)
    c1 = _cast_consts(fmt, fmax, margin, True, qt is not None, q.dtype == torch.float32)
    c1.update(EVEN=(m % cfg.bm == 0) and (n % cfg.bn == 0), TILE_MAX=True, FIXUP=False)
    qt_arg = x if qt is None else qt  # never written without a transposed copy
    # amax_ptr and inv_ptr are unused in this mode: the read-only scale stands in for them
    if wrap is not None:
        wrap(_inline_cast(cfg))[grid](x, g, g, q, qt_arg, g, amax, m, n, **c1)
    else:
        tile = dict(BM=cfg.bm, BN=cfg.bn, GROUP=cfg.group, TMODE=cfg.tmode, STAGES=cfg.stages)
        _cast2_kernel[grid](x, g, g, q, qt_arg, g, amax, m, n, **c1, **tile, num_warps=cfg.warps)


def spec_cast_impl(x: torch.Tensor, guess: torch.Tensor, fmt: str, margin: int, transpose: bool):
    """Body of ``fp8_scaling::spec_cast`` (eager callers use it directly)."""
    if x.dim() != 2:
        raise ValueError(f"spec_cast expects a 2-D tensor, got shape {tuple(x.shape)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown FP8 format {fmt!r}; expected one of {sorted(FORMATS)}")
    if spec_cast_ok(x, fmt):
        return launch_spec_cast(x, fmt, guess, margin, transpose)
    return spec_cast_ref(x, guess, fmt, margin, transpose)


@torch.library.custom_op("fp8_scaling::spec_cast", mutates_args=())
def spec_cast_op(
    x: torch.Tensor, guess: torch.Tensor, fmt: str, margin: int, transpose: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """JIT power-of-two cast reusing the previous scale when it still holds (module docstring)."""
    return spec_cast_impl(x, guess, fmt, margin, transpose)


@spec_cast_op.register_fake
def _(x, guess, fmt, margin, transpose):
    q, qt, inv = fake_fp8_outputs(x, fmt, transpose)
    return q, qt, inv, torch.empty_like(inv), torch.empty_like(inv)


if HAS_TRITON_OP:

    @torch.library.triton_op("fp8_scaling::spec_cast_tk", mutates_args=())
    def spec_cast_tk(
        x: torch.Tensor, guess: torch.Tensor, fmt: str, margin: int, transpose: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`spec_cast_op` whose two launches torch.compile emits in its own wrapper code
        (no Python operator call per step); CUDA tensors that :func:`spec_cast_ok` accepts."""
        if spec_cast_ok(x, fmt):
            return launch_spec_cast(x, fmt, guess, margin, transpose, wrap=wrap_triton)
        q, qt, inv, a, s = spec_cast_ref(x, guess, fmt, margin, transpose)
        return q, qt, inv, a, s
