"""The FP8 linear autograd function: three GEMMs (output, grad-input, grad-weight) in FP8.

Perez et al. 2023, Section 3: ``Y = 2**-(b_X + b_W) (X8 W8^T)``, ``dX = 2**-(b_G + b_W) (G8 W8)``
and ``dW = 2**-(b_G + b_X) (G8^T X8)``; the FP8 operands of the forward are saved and reused in
the backward (no re-cast). On Hopper GPUs the GEMMs are ``torch._scaled_mm`` (row-major A,
column-major B, float32 0-d scales); elsewhere an exact emulation (dequantise, float32 matmul,
round to the output dtype) computes the same function.
"""

from __future__ import annotations

from typing import Any

import torch

from ._cast_ops import (
    HAS_TRITON_OP,
    amax_impl,
    amax_one_tk,
    amax_pair_impl,
    amax_pair_tk,
    amax_tk,
    cast_one_tk,
    cast_pair_impl,
    cast_pair_tk,
    cast_transpose_impl,
    cast_transpose_tk,
    delayed_cast_impl,
    delayed_cast_op,
)
from ._formats import FP8Format
from ._kernels import launch_delayed_scale, launch_push
from ._recipes import ConstantScaling, DelayedScaling, JustInTimeScaling, fast_accum_for
from ._scaling import amax as amax_ref
from ._scaling import compute_bias, compute_scale, quantize
from ._speccast import HAS_TRITON_OP as _SPEC_TK
from ._speccast import spec_cast_impl, spec_cast_op
from ._torch_cast import amax_torch, cast_pow2_torch, cast_scaled_torch, pow2_scales_torch

__all__ = ["float8_linear", "hardware_fp8_supported", "history_bias"]

_HW_FORMATS = ("e4m3", "e5m2")


_CAPS: dict[int, bool] = {}


def _fp8_capable_eager(index: int) -> bool:
    return tuple(torch.cuda.get_device_capability(index)) >= (8, 9)


try:  # a constant for the compiler: no guard, no graph break
    _fp8_capable = torch._dynamo.assume_constant_result(_fp8_capable_eager)
except AttributeError:  # pragma: no cover - old torch
    _fp8_capable = _fp8_capable_eager


def warm_capabilities() -> None:
    """Look up every visible GPU's FP8 support eagerly (so compiled code only reads a dict)."""
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if i not in _CAPS:
                _CAPS[i] = _fp8_capable_eager(i)


def hardware_fp8_supported(device: torch.device) -> bool:
    """True when ``device`` runs ``torch._scaled_mm`` natively (CUDA compute capability >= 8.9)."""
    if device.type != "cuda" or not hasattr(torch, "_scaled_mm"):
        return False
    index = device.index if device.index is not None else 0
    if index in _CAPS:
        return _CAPS[index]
    return bool(_fp8_capable(index))


def _reduce_amax(a: torch.Tensor, group: Any) -> torch.Tensor:
    """MAX all-reduce of a 0-d amax over ``group`` (no host sync).

    Under ``torch.compile`` a functional collective (traceable); in eager mode an in-place
    ``dist.all_reduce`` on a copy, so the result is a plain tensor that the Triton cast kernels
    can take (a functional collective's lazy wrapper tensor has no data pointer).
    """
    if group is None:
        return a
    import torch.distributed as dist

    if _compiling():
        import torch.distributed._functional_collectives as funcol

        return funcol.all_reduce(a, "max", group)
    a = a.clone()
    dist.all_reduce(a, op=dist.ReduceOp.MAX, group=group)
    return a


def history_bias(hist: torch.Tensor, recipe: DelayedScaling, fmt: FP8Format, margin: int):
    """Bias for the next step from an amax history row ``hist`` (L,), newest first."""
    filled = hist > 0
    if recipe.algo == "max":
        a = hist.max()
    elif recipe.algo == "most_recent":
        a = hist[0]
    else:
        w = recipe.ema_decay ** torch.arange(hist.numel(), device=hist.device, dtype=torch.float32)
        w = w * filled
        a = (w * hist).sum() / w.sum().clamp_min(1e-30)
    b = compute_bias(a, fmt, margin)
    return torch.where(filled.any(), b, torch.full_like(b, float(recipe.init_bias)))


def _push(hist: torch.Tensor, a: torch.Tensor) -> None:
    """Roll the history row ``hist`` (L,) and put ``a`` first; non-finite amaxes are skipped."""
    new = torch.cat([a.reshape(1).to(hist.dtype), hist[:-1]])
    hist.copy_(torch.where(torch.isfinite(a), new, hist))


class _Q:
    """An FP8 operand: data (R, C), optional transposed copy (C, R), dequant scale, amax."""

    __slots__ = ("amax", "data", "data_t", "inv")

    def __init__(self, data, data_t, inv, amax):
        self.data, self.data_t, self.inv, self.amax = data, data_t, inv, amax

    def t_contig(self) -> torch.Tensor:
        return self.data_t if self.data_t is not None else self.data.t().contiguous()


CAST_BACKENDS = ("auto", "inductor", "triton", "pair", "spec")

# "auto" under torch.compile: tensors of at least this many elements use our Triton kernels
# (JIT recipe, as torch.library.triton_op ops) instead of inductor's generated casts; None:
# inductor for every size. H200, forward + backward of one compiled layer vs bf16: at 8192^3
# and 16384x8192x28672 our kernels won (1.69x / 1.71x vs 1.57x / 1.64x with inductor's casts,
# which the partitioner also recomputes for the weight in the backward); at 4096^3, where the
# step is bound by host time, inductor's casts won (1.18 ms vs 1.46 ms): its launches cost
# less host time than those of user-defined kernels. 2**25 elements lies between 4096^2 and
# 8192^2.
AUTO_TRITON_MIN_NUMEL: int | None = 1 << 25
# Under torch.compile with our cast kernels: True (measured on the H200, run 6) takes the amax
# from our Triton amax kernel too; False from inductor's own reduction (torch ops: exact, NaN as
# inf), one user-kernel launch per tensor instead of two plus a fill. Launches of user-defined
# kernels cost more host time than inductor's, which bounded the compiled layer, so False may
# be faster; not measured yet (benchmark case linear_fp8_triton_amax_vs_bf16 compares them).
TRITON_OP_AMAX: bool = True
# "auto" casts the forward's input and weight (JIT recipe, 2-byte inputs) with the pair kernels
# of :mod:`fp8_scaling._pair` -- both amaxes in one launch, both casts in one launch -- and the
# gradient with the same two-launch path (the backend "pair" always does), while the larger of
# input and weight has fewer than AUTO_PAIR_MAX_NUMEL elements; above, one tensor at a time.
# H200 (runs 8 and 9), compiled forward+backward: at 4096^3 the step is host-bound (0.41 ms of
# GPU work) and the pair route cut the host time per step from 1.32 to 1.00 ms (4 cast launches
# instead of 10, plus 6 tiny buffer-initialising kernels inductor adds); at 8192^3 both routes
# took 2.69-2.84 ms; at 16384x8192x28672 the one-tensor route was 0.5-2 % faster (19.43-19.45
# vs 19.54-19.92 ms; every cast program of the pair route first reads the amax pass's partial
# maxima, so its extra work grows with the tile count).
AUTO_PAIR: bool = True
AUTO_PAIR_MAX_NUMEL: int = 1 << 27
# The one-pass JIT cast of :mod:`fp8_scaling._speccast` (cast with the previous step's scale
# while measuring the amax, recast only if the scale changed: same bytes, one read of the
# input instead of two). ``cast_backend="spec"`` uses it for every JIT tensor it can take
# (contiguous 2-D bf16/fp16, no amax group) outside the pair route; "auto" uses it for tensors
# of at least AUTO_SPEC_MIN_NUMEL elements while AUTO_SPEC is True, and then leaves the pair
# route to layers whose input and weight are both smaller. H200 (2026-11-30, runs 11-13),
# compiled forward+backward: at 16384x8192x28672 the step took 18.8-19.3 ms (1.76-1.79x over
# bf16 in six measurements) against 19.0-19.1 ms for the two-pass casts in the same runs; at
# 8192^3 1.77-1.87x against 1.80-1.86x for the pair route.
AUTO_SPEC: bool = True
AUTO_SPEC_MIN_NUMEL: int = 1 << 25
# Under torch.compile the one-pass casts are the custom op ``fp8_scaling::spec_cast`` (a Python
# call per cast and step: ~0.3 ms of host time per cast on the H200's host, round 0 profile of
# 2026-11-30) or, with SPEC_TRITON_OP, the triton_op ``fp8_scaling::spec_cast_tk`` whose
# launches inductor emits in its wrapper code (same kernels and bytes; TMA first passes run
# with pointers there). H200 runs 18-19 (2026-11-30) measured no step gain beyond run-to-run
# noise at 8192^3 and 16384x8192x28672, hence off by default.
SPEC_TRITON_OP: bool = False


def _pair_ok(x, w, recipe, fmt: FP8Format, fast, spec_ready: bool = False) -> bool:
    """Whether the forward casts ``x`` and ``w`` with the pair kernels (see ``AUTO_PAIR``);
    ``spec_ready``: the layer has scale guesses, so "auto" prefers the one-pass casts for
    tensors of ``AUTO_SPEC_MIN_NUMEL`` elements or more when ``AUTO_SPEC`` is set."""
    if fast not in ("pair", "auto", True) or (fast != "pair" and not AUTO_PAIR):
        return False
    big = max(x.numel(), w.numel())
    if fast != "pair" and big >= AUTO_PAIR_MAX_NUMEL:
        return False
    if fast != "pair" and AUTO_SPEC and spec_ready and big >= AUTO_SPEC_MIN_NUMEL:
        return False
    if _compiling() and not HAS_TRITON_OP:
        return False
    return (
        isinstance(recipe, JustInTimeScaling)
        and recipe.pow2
        and recipe.amax_group is None
        and fmt.name in _HW_FORMATS
        and x.dtype == w.dtype
        and x.element_size() == 2
        and x.is_contiguous()
        and w.is_contiguous()
    )


def _compiling() -> bool:
    try:
        return torch.compiler.is_compiling()
    except AttributeError:  # pragma: no cover - torch < 2.3
        return False


def _spec_ok(t, recipe, fast, guess) -> bool:
    """Whether the JIT cast of ``t`` takes the one-pass route (see ``AUTO_SPEC``)."""
    if guess is None or fast not in ("spec", "auto", True):
        return False
    if fast != "spec" and not (AUTO_SPEC and t.numel() >= AUTO_SPEC_MIN_NUMEL):
        return False
    return (
        isinstance(recipe, JustInTimeScaling)
        and recipe.pow2
        and recipe.amax_group is None
        and guess.is_floating_point()  # any value is a valid guess (bf16 after .bfloat16())
        and t.dim() == 2
        and t.element_size() == 2
        and t.is_contiguous()
    )


def _quant(t, fmt: FP8Format, margin: int, recipe, hist_row, fast, need_t: bool, guess=None) -> _Q:
    """Quantize one role of one GEMM according to ``recipe`` (``hist_row`` for delayed).

    ``fast`` is False (exact reference ops) or a cast backend: ``"auto"`` traces plain torch ops
    when compiling (inductor fuses them; JIT tensors of ``AUTO_TRITON_MIN_NUMEL`` elements or
    more use the Triton kernels) and launches the Triton kernels directly in eager mode;
    ``"inductor"`` always uses the plain torch ops; ``"triton"`` always uses the Triton kernels
    (when compiling: JIT casts as ``torch.library.triton_op`` ops, whose launches inductor emits
    itself, on torch >= 2.6; delayed casts as custom ops); ``"spec"`` the one-pass JIT cast of
    :mod:`fp8_scaling._speccast` with ``guess`` (a float32 0-d view of the layer's scale state,
    updated in place to the new scale), as ``"auto"`` when it does not apply.
    """
    backend = "reference"
    if fast and recipe.pow2 and fmt.name in _HW_FORMATS:
        compiling = _compiling()
        backend = fast if isinstance(fast, str) else "auto"
        if _spec_ok(t, recipe, backend, guess):
            cast = spec_cast_op if compiling else spec_cast_impl
            if compiling and SPEC_TRITON_OP and _SPEC_TK:
                from ._speccast import spec_cast_tk as cast
            q, qt, inv, a, scale = cast(t, guess, fmt.name, margin, need_t)
            with torch.no_grad():
                guess.copy_(scale)
            return _Q(q, qt if need_t else None, inv, a)
        backend = "auto" if backend in ("pair", "spec") else backend  # as "auto" otherwise
        if backend == "auto" and not compiling:
            backend = "triton_eager"
        elif backend == "auto":
            big = AUTO_TRITON_MIN_NUMEL is not None and t.numel() >= AUTO_TRITON_MIN_NUMEL
            jit = isinstance(recipe, JustInTimeScaling) and recipe.amax_group is None
            backend = "triton_op" if (big and jit and HAS_TRITON_OP) else "inductor"
        elif backend == "triton":
            backend = "triton_op" if compiling else "triton_eager"
        if backend != "inductor" and not t.is_contiguous():
            backend = "inductor"
    if isinstance(recipe, JustInTimeScaling):
        if backend == "inductor" and recipe.amax_group is None:
            q, qt, inv, a = cast_pow2_torch(t, fmt, margin, need_t)
            return _Q(q, qt, inv, a)
        if backend == "inductor":
            a = amax_ref(t)
        elif backend == "triton_op":
            a = amax_tk(t) if TRITON_OP_AMAX else amax_torch(t)
        elif backend == "triton_eager":
            a = amax_impl(t)
        else:
            a = amax_ref(t)
        a = _reduce_amax(a, recipe.amax_group)
        if backend == "inductor":
            scale, inv = pow2_scales_torch(a, fmt, margin)
            q, qt = cast_scaled_torch(t, scale, fmt, need_t)[:2]
            return _Q(q, qt, inv, a)
        if backend in ("triton_op", "triton_eager"):
            ct = cast_transpose_tk if backend == "triton_op" else cast_transpose_impl
            q, qt, inv = ct(t, a, fmt.name, margin, need_t)
            return _Q(q, qt if need_t else None, inv, a)
        if recipe.pow2:
            scale = torch.exp2(compute_bias(a, fmt, margin))
        else:
            scale = compute_scale(a, fmt, margin)
            scale = torch.where(torch.isnan(a), a, scale)
        return _Q(quantize(t, scale, fmt), None, 1.0 / scale, a)
    fused_hist = (
        isinstance(recipe, DelayedScaling)
        and backend == "triton_eager"
        and t.is_cuda
        and hist_row.dtype == torch.float32  # e.g. not after model.bfloat16()
        and hist_row.is_contiguous()
        and recipe.algo in ("max", "most_recent")
        and recipe.amax_group is None
        and -31 <= recipe.init_bias <= 31
    )
    if fused_hist:  # bias from the history and the history update: one small kernel each
        scale, inv = launch_delayed_scale(
            hist_row, fmt.max, margin, recipe.algo == "most_recent", recipe.init_bias
        )
        q, qt, a = delayed_cast_impl(t, scale, fmt.name, need_t)
        launch_push(hist_row, a)
        return _Q(q, qt if need_t else None, inv, a)
    if isinstance(recipe, DelayedScaling):
        b = history_bias(hist_row, recipe, fmt, margin)
        scale = torch.exp2(b)
    else:
        cb = (
            recipe.bias
            if (fmt is recipe.formats.forward or recipe.grad_bias is None)
            else recipe.grad_bias
        )
        scale = torch.full((), 2.0**cb, dtype=torch.float32, device=t.device)
    if backend == "inductor":
        q, qt, a = cast_scaled_torch(t, scale, fmt, need_t)
        out = _Q(q, qt, 1.0 / scale, a)
    elif backend in ("triton_op", "triton_eager"):
        dc = delayed_cast_op if backend == "triton_op" else delayed_cast_impl
        q, qt, a = dc(t, scale, fmt.name, need_t)
        out = _Q(q, qt if need_t else None, 1.0 / scale, a)
    else:
        out = _Q(quantize(t, scale, fmt), None, 1.0 / scale, amax_ref(t))
    if isinstance(recipe, DelayedScaling):
        with torch.no_grad():
            _push(hist_row, _reduce_amax(out.amax, recipe.amax_group))
    return out


def _mm(a8, b8, sa, sb, out_dtype, hw: bool, fast_accum: bool) -> torch.Tensor:
    """``(sa * sb) * (a8 @ b8)`` rounded to ``out_dtype``; a8 (M, K) row-major, b8 (K, N)."""
    if hw:
        return torch._scaled_mm(
            a8, b8, scale_a=sa, scale_b=sb, out_dtype=out_dtype, use_fast_accum=fast_accum
        )
    return (torch.matmul(a8.float(), b8.float()) * (sa * sb)).to(out_dtype)


def _shapes_ok(*dims: int) -> bool:
    return all(d % 16 == 0 and d > 0 for d in dims)


class _Float8LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, hist, recipe, fast, state):
        m, k = x.shape
        n = weight.shape[0]
        fmt_f, fmt_b = recipe.formats.forward, recipe.formats.backward
        hw = bool(fast) and hardware_fp8_supported(x.device) and _shapes_ok(m, k, n)
        hw = hw and fmt_f.name in _HW_FORMATS and fmt_b.name in _HW_FORMATS
        qf = fast if hw else False
        delayed = isinstance(recipe, DelayedScaling)
        need_dx, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        fp8_dw = recipe.grad_weight == "fp8"
        pair = hw and _pair_ok(x, weight, recipe, fmt_f, qf, state is not None)
        if pair:  # x and w: one amax launch and one cast launch for both
            tx, tw = need_dw and fp8_dw, need_dx
            amax_fn, cast_fn = (
                (amax_pair_tk, cast_pair_tk) if _compiling() else (amax_pair_impl, cast_pair_impl)
            )
            part = amax_fn(x, weight)
            qx, qxt, invx, amx, qw, qwt, invw, amw = cast_fn(
                x, weight, part, fmt_f.name, recipe.margin, tx, tw
            )
            # (1,)-shaped scales from the kernels (0-d from the CPU reference): 0-d views
            xq = _Q(qx, qxt if tx else None, invx.reshape(()), amx.reshape(()))
            wq = _Q(qw, qwt if tw else None, invw.reshape(()), amw.reshape(()))
        else:
            st = (None, None) if state is None else (state[0], state[1])
            xq = _quant(
                x, fmt_f, recipe.margin, recipe, hist[0] if delayed else None, qf,
                need_dw and fp8_dw, st[0],
            )  # fmt: skip
            wq = _quant(
                weight, fmt_f, recipe.margin, recipe, hist[1] if delayed else None, qf, need_dx,
                st[1],
            )  # fmt: skip
        y = _mm(
            xq.data,
            wq.data.t(),
            xq.inv,
            wq.inv,
            x.dtype,
            hw,
            fast_accum_for(recipe, "output"),
        )
        ctx.recipe, ctx.hw, ctx.fast, ctx.pair = recipe, hw, qf, pair
        ctx.shapes = (m, k, n)
        ctx.x_dtype, ctx.w_dtype = x.dtype, weight.dtype
        ctx.save_for_backward(
            (xq.t_contig() if need_dw else None) if (hw and fp8_dw) else xq.data,
            xq.inv,
            (wq.t_contig() if need_dx else None) if hw else wq.data,
            wq.inv,
            x if not fp8_dw else None,
            hist,
            state if hw else None,
        )
        return y

    @staticmethod
    def backward(ctx, g):
        x8, xinv, w8, winv, x_hp, hist, state = ctx.saved_tensors
        recipe, hw = ctx.recipe, ctx.hw
        delayed = isinstance(recipe, DelayedScaling)
        fp8_dw = recipe.grad_weight == "fp8"
        need_dx, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        g = g.contiguous()
        if ctx.pair and g.dtype == ctx.x_dtype:  # the gradient alone: two launches as well
            tg = need_dw and fp8_dw
            fmt = recipe.formats.backward.name
            if _compiling():
                q, qt, inv, am = cast_one_tk(g, amax_one_tk(g), fmt, recipe.grad_margin, tg)
            else:
                part = amax_pair_impl(g)
                out = cast_pair_impl(g, None, part, fmt, recipe.grad_margin, tg, False)
                q, qt, inv, am = out[:4]
            gq = _Q(q, qt if tg else None, inv.reshape(()), am.reshape(()))
        else:
            gq = _quant(
                g,
                recipe.formats.backward,
                recipe.grad_margin,
                recipe,
                hist[2] if delayed else None,
                ctx.fast,
                need_dw and fp8_dw,
                None if state is None else state[2],
            )
        dx = dw = None
        if need_dx:
            # B = W (N, K) column-major: the saved transposed copy W8^T (K, N) viewed as .t()
            wb = w8.t() if hw else w8
            fa = fast_accum_for(recipe, "grad_input")
            dx = _mm(gq.data, wb, gq.inv, winv, ctx.x_dtype, hw, fa)
        if need_dw:
            if fp8_dw:
                xb = x8.t() if hw else x8  # X (M, K) column-major = X8^T (K, M) viewed as .t()
                fa = fast_accum_for(recipe, "grad_weight")
                dw = _mm(
                    gq.t_contig() if hw else gq.data.t(), xb, gq.inv, xinv, ctx.w_dtype, hw, fa
                )
            else:
                dw = (g.t().to(x_hp.dtype) @ x_hp).to(ctx.w_dtype)
        return dx, dw, None, None, None, None


def float8_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    recipe: JustInTimeScaling | DelayedScaling | ConstantScaling | None = None,
    history: torch.Tensor | None = None,
    fast: bool | str = True,
    scale_state: torch.Tensor | None = None,
) -> torch.Tensor:
    """Functional FP8 linear ``y = x W^T + b`` with FP8 forward and backward GEMMs.

    Args:
        x: (..., K) floating input; the output has ``x``'s dtype.
        weight: (N, K) weight.
        bias: optional (N,) bias, added in high precision.
        recipe: scaling recipe (default :class:`JustInTimeScaling`).
        history: (3, L) float32 amax history (rows: input, weight, grad) for
            :class:`DelayedScaling`; updated in place.
        fast: use ``torch._scaled_mm`` and fast casts when the device supports them
            (otherwise the exact emulation runs). ``True`` or ``"auto"``: under
            ``torch.compile`` our Triton kernels for JIT tensors of at least
            ``AUTO_TRITON_MIN_NUMEL`` (2**25) elements and casts traced as plain torch ops
            (inductor fuses them) for the rest; fused Triton kernels in eager mode;
            ``"inductor"``: plain torch ops always; ``"triton"``: Triton kernels always
            (launched by inductor when compiling, see :func:`_quant`); ``"pair"``: the
            forward's input and weight with one amax launch and one cast launch for both
            (:mod:`fp8_scaling._pair`, JIT recipe), the gradient as ``"auto"``; ``"spec"``:
            the one-pass JIT cast of :mod:`fp8_scaling._speccast` (needs ``scale_state``).
            ``False``: emulation.
        scale_state: optional (3,) float32 tensor, the last JIT scales (rows: input, weight,
            grad) that the one-pass JIT cast tries first; updated in place. Any initial value
            works (a wrong guess costs one extra pass, never a different result).

    Returns:
        (..., N) tensor.
    """
    recipe = recipe if recipe is not None else JustInTimeScaling()
    if isinstance(fast, str) and fast not in CAST_BACKENDS:
        raise ValueError(f"fast must be a bool or one of {CAST_BACKENDS}, got {fast!r}")
    if isinstance(recipe, DelayedScaling) and (history is None or history.shape[0] != 3):
        raise ValueError("DelayedScaling needs a (3, history_len) float32 amax history tensor")
    lead = x.shape[:-1]
    bad_state = scale_state is not None and (
        scale_state.shape != (3,) or not scale_state.is_floating_point()
    )
    if bad_state:
        raise ValueError(
            f"scale_state must be a (3,) float32 tensor, got shape {tuple(scale_state.shape)} "
            f"and dtype {scale_state.dtype}"
        )
    y = _Float8LinearFn.apply(
        x.reshape(-1, x.shape[-1]), weight, history, recipe, fast, scale_state
    )
    y = y.reshape(*lead, weight.shape[0])
    return y + bias.to(y.dtype) if bias is not None else y
