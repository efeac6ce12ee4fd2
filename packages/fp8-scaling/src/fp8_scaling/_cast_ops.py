"""FP8 cast operators registered with ``torch.library`` (opaque to ``torch.compile``).

Each operator has a pure-torch reference (used on CPU and by the tests) and, on CUDA, a Triton
implementation from :mod:`fp8_scaling._kernels`. Fake implementations give shapes and dtypes to
the compiler, so ``torch.compile(fullgraph=True)`` traces through them without graph breaks.

Operators (all shapes for a 2-D contiguous input ``x`` of shape (M, N)):

* ``fp8_scaling::amax(x) -> amax`` float32 0-d, NaN counted as inf.
* ``fp8_scaling::cast_transpose(x, amax, fmt, margin, transpose) -> (q, qt, inv_scale)``:
  JIT power-of-two cast; ``q`` (M, N) and ``qt`` (N, M) in ``fmt``'s dtype (``qt`` is (0, 0)
  when ``transpose`` is False), ``inv_scale = 2**-bias`` float32 0-d.
* ``fp8_scaling::delayed_cast(x, scale, fmt, transpose) -> (q, qt, amax)``: cast with a given
  scale and return the amax of ``x`` measured in the same pass.
"""

from __future__ import annotations

import torch

from . import _tuned
from ._fastcast import launch_amax2, launch_cast2
from ._formats import FORMATS, get_format
from ._kernels import HAS_TRITON, launch_amax, launch_cast_transpose
from ._pair import DEFAULT_PAIR, launch_amax_pair, launch_cast_pair
from ._scaling import amax as amax_ref
from ._scaling import compute_bias, quantize

__all__ = [
    "HAS_TRITON_OP",
    "amax_impl",
    "amax_one_tk",
    "amax_op",
    "amax_pair_impl",
    "amax_pair_tk",
    "amax_tk",
    "cast_one_tk",
    "cast_pair_impl",
    "cast_pair_tk",
    "cast_transpose_impl",
    "cast_transpose_op",
    "cast_transpose_ref",
    "cast_transpose_tk",
    "delayed_cast_impl",
    "delayed_cast_op",
    "delayed_cast_ref",
]

_TRITON_FORMATS = ("e4m3", "e5m2")


def _use_triton(x: torch.Tensor, fmt: str | None = None) -> bool:
    return HAS_TRITON and x.is_cuda and (fmt is None or fmt in _TRITON_FORMATS)


def cast_transpose_ref(
    x: torch.Tensor, amax: torch.Tensor, fmt: str, margin: int, transpose: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pure-torch reference of ``cast_transpose`` (JIT power-of-two cast in both layouts)."""
    f = get_format(fmt)
    bias = compute_bias(amax.float(), f, margin)
    scale = torch.exp2(bias)
    q = quantize(x, scale, f)
    qt = q.t().contiguous() if transpose else q.new_empty((0, 0))
    return q, qt, torch.exp2(-bias)


def delayed_cast_ref(
    x: torch.Tensor, scale: torch.Tensor, fmt: str, transpose: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pure-torch reference of ``delayed_cast`` (cast with a given scale + amax of ``x``)."""
    f = get_format(fmt)
    q = quantize(x, scale.float(), f)
    qt = q.t().contiguous() if transpose else q.new_empty((0, 0))
    return q, qt, amax_ref(x)


def _amax_gpu(x: torch.Tensor, wrap=None) -> torch.Tensor:
    """Triton amax of a contiguous CUDA tensor: the tuned kernel when the table has one."""
    cfg = _tuned.amax_config(x, compiled=wrap is not None)
    if cfg is not None:
        return launch_amax2(x, cfg, wrap=wrap)
    return launch_amax(x, wrap=wrap)


def _cast_gpu(x: torch.Tensor, fmt: str, wrap=None, **kw):
    """Triton cast of a contiguous 2-D CUDA tensor: the tuned kernel for 2-byte inputs when the
    table has one, else the self-tuning kernel (``kw`` as in ``launch_cast_transpose``)."""
    cfg = None
    if x.element_size() == 2:
        cfg = _tuned.cast_config(x, delayed=kw.get("scale") is not None, compiled=wrap is not None)
    if cfg is not None:
        return launch_cast2(x, fmt, FORMATS[fmt].max, cfg, wrap=wrap, **kw)
    return launch_cast_transpose(x, fmt, FORMATS[fmt].max, wrap=wrap, **kw)


def _check(x: torch.Tensor, fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown FP8 format {fmt!r}; expected one of {sorted(FORMATS)}")
    if x.dim() != 2:
        raise ValueError(f"expected a 2-D tensor, got shape {tuple(x.shape)}")


def amax_impl(x: torch.Tensor) -> torch.Tensor:
    """Body of ``fp8_scaling::amax``; eager callers use it directly (no dispatcher overhead)."""
    if _use_triton(x) and x.numel() > 0:
        return _amax_gpu(x.contiguous())
    return amax_ref(x)


@torch.library.custom_op("fp8_scaling::amax", mutates_args=())
def amax_op(x: torch.Tensor) -> torch.Tensor:
    """Per-tensor absolute max (float32 0-d); NaN counts as inf."""
    return amax_impl(x)


@amax_op.register_fake
def _(x):
    return x.new_empty((), dtype=torch.float32)


def cast_transpose_impl(
    x: torch.Tensor, amax: torch.Tensor, fmt: str, margin: int, transpose: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Body of ``fp8_scaling::cast_transpose`` (eager callers use it directly)."""
    _check(x, fmt)
    if _use_triton(x, fmt) and x.numel() > 0:
        q, qt, inv, _ = _cast_gpu(
            x.contiguous(), fmt, amax=amax, margin=margin, transpose=transpose
        )
        return q, qt, inv
    return cast_transpose_ref(x, amax, fmt, margin, transpose)


@torch.library.custom_op("fp8_scaling::cast_transpose", mutates_args=())
def cast_transpose_op(
    x: torch.Tensor, amax: torch.Tensor, fmt: str, margin: int, transpose: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """JIT power-of-two FP8 cast of a 2-D tensor in both layouts (see module docstring)."""
    return cast_transpose_impl(x, amax, fmt, margin, transpose)


def fake_fp8_outputs(x: torch.Tensor, fmt: str, transpose: bool) -> tuple[torch.Tensor, ...]:
    """Fake (meta) outputs of a 2-D FP8 cast op: q ``(m, n)``, qt ``(n, m)`` or ``(0, 0)``, one
    0-d float32 scale."""
    dt = FORMATS[fmt].dtype
    m, n = x.shape
    qt = x.new_empty((n, m) if transpose else (0, 0), dtype=dt)
    return x.new_empty((m, n), dtype=dt), qt, x.new_empty((), dtype=torch.float32)


@cast_transpose_op.register_fake
def _(x, amax, fmt, margin, transpose):
    return fake_fp8_outputs(x, fmt, transpose)


def delayed_cast_impl(
    x: torch.Tensor, scale: torch.Tensor, fmt: str, transpose: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Body of ``fp8_scaling::delayed_cast`` (eager callers use it directly)."""
    _check(x, fmt)
    if _use_triton(x, fmt) and x.numel() > 0:
        q, qt, _, am = _cast_gpu(x.contiguous(), fmt, scale=scale, transpose=transpose)
        return q, qt, am
    return delayed_cast_ref(x, scale, fmt, transpose)


@torch.library.custom_op("fp8_scaling::delayed_cast", mutates_args=())
def delayed_cast_op(
    x: torch.Tensor, scale: torch.Tensor, fmt: str, transpose: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One-pass FP8 cast with a given scale, returning the amax of ``x`` for the next step."""
    return delayed_cast_impl(x, scale, fmt, transpose)


@delayed_cast_op.register_fake
def _(x, scale, fmt, transpose):
    return fake_fp8_outputs(x, fmt, transpose)


# ``torch.library.triton_op`` (torch >= 2.6): the same JIT kernels, but torch.compile sees the
# Triton launches inside and inductor emits them in its own wrapper code (no custom-op dispatch
# per call); used by ``cast_backend="triton"`` when compiling.
HAS_TRITON_OP = hasattr(torch.library, "triton_op") and hasattr(torch.library, "wrap_triton")

if HAS_TRITON_OP:

    @torch.library.triton_op("fp8_scaling::amax_tk", mutates_args=())
    def amax_tk(x: torch.Tensor) -> torch.Tensor:
        """``fp8_scaling::amax`` whose Triton launch is visible to torch.compile."""
        if _use_triton(x) and x.numel() > 0:
            return _amax_gpu(x.contiguous(), wrap=torch.library.wrap_triton)
        return amax_ref(x)

    @torch.library.triton_op("fp8_scaling::cast_transpose_tk", mutates_args=())
    def cast_transpose_tk(
        x: torch.Tensor, amax: torch.Tensor, fmt: str, margin: int, transpose: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``fp8_scaling::cast_transpose`` whose Triton launch is visible to torch.compile."""
        _check(x, fmt)
        if _use_triton(x, fmt) and x.numel() > 0:
            q, qt, inv, _ = _cast_gpu(
                x.contiguous(),
                fmt,
                amax=amax,
                margin=margin,
                transpose=transpose,
                wrap=torch.library.wrap_triton,
            )
            return q, qt, inv
        return cast_transpose_ref(x, amax, fmt, margin, transpose)

else:  # pragma: no cover - torch < 2.6
    amax_tk, cast_transpose_tk = amax_op, cast_transpose_op


# --- one or two tensors (the forward's input and weight) in one amax and one cast launch ---


def amax_pair_impl(a: torch.Tensor, b: torch.Tensor | None = None, wrap=None) -> torch.Tensor:
    """Partial absolute maxima ``(P, 2)`` of ``a`` and ``b`` (one launch on CUDA; NaN counts as
    inf); the amax of ``a`` is ``out[:, 0].max()``. On CPU ``P = 1`` (the exact amaxes)."""
    if _use_triton(a) and (b is None or (_use_triton(b) and a.dtype == b.dtype)):
        return launch_amax_pair(a.contiguous(), None if b is None else b.contiguous(), wrap=wrap)
    zero = torch.zeros((), dtype=torch.float32, device=a.device)
    return torch.stack([amax_ref(a), zero if b is None else amax_ref(b)]).reshape(1, 2)


def cast_pair_impl(
    a: torch.Tensor,
    b: torch.Tensor | None,
    partials: torch.Tensor,
    fmt: str,
    margin: int,
    transpose_a: bool,
    transpose_b: bool,
    wrap=None,
) -> tuple[torch.Tensor, ...]:
    """JIT power-of-two casts of two 2-D tensors: ``(qa, qta, inv_a, amax_a, qb, qtb, inv_b,
    amax_b)`` (inv and amax float32 0-d).

    As :func:`cast_transpose_ref` per tensor, with ``partials`` from :func:`amax_pair_impl`;
    one launch on CUDA (:func:`fp8_scaling._pair.launch_cast_pair`). ``b=None``: ``a`` alone.
    """
    _check(a, fmt)
    if b is not None:
        _check(b, fmt)
    if _use_triton(a, fmt) and (b is None or (_use_triton(b) and a.dtype == b.dtype)):
        big = a if b is None or a.numel() >= b.numel() else b
        cfg = _tuned.cast_config(big, delayed=False, compiled=wrap is not None) or DEFAULT_PAIR
        return launch_cast_pair(
            a.contiguous(), None if b is None else b.contiguous(), partials, fmt,
            FORMATS[fmt].max, margin, transpose_a, transpose_b, cfg, wrap=wrap,
        )  # fmt: skip
    ama, amb = partials[:, 0].amax(), partials[:, 1].amax()
    qa, qta, inva = cast_transpose_ref(a, ama, fmt, margin, transpose_a)
    if b is None:
        qb, qtb, invb = qa.new_empty((0, 0)), qa.new_empty((0, 0)), inva.clone()
    else:
        qb, qtb, invb = cast_transpose_ref(b, amb, fmt, margin, transpose_b)
    return qa, qta, inva, ama, qb, qtb, invb, amb


if HAS_TRITON_OP:

    @torch.library.triton_op("fp8_scaling::amax_pair_tk", mutates_args=())
    def amax_pair_tk(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """:func:`amax_pair_impl` whose Triton launch is visible to torch.compile."""
        return amax_pair_impl(a, b, wrap=torch.library.wrap_triton)

    @torch.library.triton_op("fp8_scaling::cast_pair_tk", mutates_args=())
    def cast_pair_tk(
        a: torch.Tensor,
        b: torch.Tensor,
        partials: torch.Tensor,
        fmt: str,
        margin: int,
        transpose_a: bool,
        transpose_b: bool,
    ) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
    ]:  # fmt: skip
        """:func:`cast_pair_impl` whose Triton launch is visible to torch.compile."""
        return cast_pair_impl(
            a, b, partials, fmt, margin, transpose_a, transpose_b, wrap=torch.library.wrap_triton
        )

    @torch.library.triton_op("fp8_scaling::amax_one_tk", mutates_args=())
    def amax_one_tk(a: torch.Tensor) -> torch.Tensor:
        """:func:`amax_pair_impl` of one tensor, visible to torch.compile."""
        return amax_pair_impl(a, None, wrap=torch.library.wrap_triton)

    @torch.library.triton_op("fp8_scaling::cast_one_tk", mutates_args=())
    def cast_one_tk(
        a: torch.Tensor, partials: torch.Tensor, fmt: str, margin: int, transpose: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`cast_pair_impl` of one tensor: ``(q, qt, inv, amax)``."""
        return cast_pair_impl(
            a, None, partials, fmt, margin, transpose, False, wrap=torch.library.wrap_triton
        )[:4]

else:  # pragma: no cover - torch < 2.6: the pair path is not used when compiling
    amax_pair_tk = cast_pair_tk = amax_one_tk = cast_one_tk = None
