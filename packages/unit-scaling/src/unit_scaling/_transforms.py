"""Model transforms: automatic unit scaling by module swapping, and number-format simulation."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from . import _modules as M
from ._formats import FPFormat

__all__ = ["simulate_format", "unit_scale"]

logger = logging.getLogger("unit_scaling.transforms")


def _cls(m: nn.Module) -> str:
    return type(m).__name__


def _copy_params(src: nn.Module, dst: nn.Module) -> None:
    dst.load_state_dict(src.state_dict(), strict=False)


def _swap(m: nn.Module, readout: bool) -> nn.Module | None:
    """A unit-scaled equivalent of ``m`` (same shapes/config) or ``None`` if unsupported."""
    t = type(m)
    if t is nn.Linear:
        cls = M.LinearReadout if readout else M.Linear
        return cls(m.in_features, m.out_features, m.bias is not None)
    if t is nn.Embedding:
        return M.Embedding(m.num_embeddings, m.embedding_dim, m.padding_idx)
    if t is nn.LayerNorm:
        return M.LayerNorm(m.normalized_shape, m.eps, m.elementwise_affine, bias=m.bias is not None)
    if t is nn.RMSNorm:
        return M.RMSNorm(m.normalized_shape, m.eps, m.elementwise_affine)
    if t is nn.GELU:
        return M.GELU(m.approximate)
    if t is nn.SiLU:
        return M.SiLU()
    if t is nn.Softmax:
        return M.Softmax(m.dim if m.dim is not None else -1)
    if t is nn.Dropout:
        return M.Dropout(m.p)
    if t is nn.CrossEntropyLoss and m.weight is None:
        return M.CrossEntropyLoss(
            ignore_index=m.ignore_index, reduction=m.reduction, label_smoothing=m.label_smoothing
        )
    if t in (nn.Conv1d, nn.Conv2d) and m.padding_mode == "zeros":
        cls = M.Conv1d if t is nn.Conv1d else M.Conv2d
        return cls(
            m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
            m.groups, m.bias is not None,
        )  # fmt: skip
    return None


_STATELESS_OK = (nn.ReLU, nn.Identity, nn.Flatten, nn.Sequential, nn.ModuleList, nn.ModuleDict)


def unit_scale(
    module: nn.Module, *, readout: str | None = None, reinit: bool = True, trace: bool = True
) -> nn.Module:
    """Replace supported torch layers of ``module`` (in place) with unit-scaled ones, then
    rewrite inline functional calls and residual adds with torch.fx.

    Swapped: ``Linear``, ``Embedding``, ``LayerNorm``, ``RMSNorm``, ``GELU``, ``SiLU``,
    ``Softmax``, ``Dropout``, ``CrossEntropyLoss`` (no class weights), ``Conv1d``/``Conv2d``
    (zero padding). Each replacement is logged at INFO on logger ``unit_scaling.transforms``;
    every other layer that holds parameters (or is not a known stateless container) is logged
    at WARNING as not converted.

    With ``trace=True`` (default) the module is then traced with ``torch.fx``: inline calls of
    ``F.linear``, ``F.gelu``, ``F.silu``, ``F.softmax``/``Tensor.softmax``, ``torch.matmul``/``@``,
    ``F.scaled_dot_product_attention`` (without ``scale=``), ``F.layer_norm``, ``F.rms_norm``,
    ``F.embedding``, ``F.dropout``, ``F.cross_entropy``, ``F.mse_loss``, ``F.conv1d``/``F.conv2d``
    become their :mod:`unit_scaling.functional` versions, and residual adds ``x + f(x)`` become
    τ-weighted ``residual_split``/``residual_add`` pairs (τ from :func:`residual_taus` over the
    adds found; Unit Scaling §5.2). Replacements are logged at INFO, other scale-changing calls
    at WARNING. If tracing fails (data-dependent control flow, ...), that is logged at WARNING and
    the module-swapped model is returned.

    Args:
        module: any model.
        readout: qualified name of the final projection (becomes ``LinearReadout``).
        reinit: initialise replaced parameters the unit-scaled way (weights N(0, 1)); if False,
            copy the existing values.

        trace: also rewrite inline calls with torch.fx (see above).

    Returns:
        A :class:`torch.fx.GraphModule` (sharing parameters and submodules with ``module``) when
        tracing rewrote at least one inline call; otherwise ``module`` itself (a bare supported
        layer is returned as its replacement).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"unit_scale expects an nn.Module, got {type(module).__name__}.")
    root = _swap(module, readout == "")
    if root is not None:
        if not reinit:
            _copy_params(module, root)
        logger.info(
            "unit_scale: replaced <root> %s -> %s", type(module).__name__, type(root).__name__
        )
        return root
    names = dict(module.named_modules())
    if readout is not None and readout not in names:
        raise ValueError(
            f"unit_scale: readout={readout!r} is not a submodule; choose one of "
            f"{[n for n, m in names.items() if isinstance(m, nn.Linear)]}."
        )
    for name, child in list(names.items()):
        if not name or ("." in name and name.rsplit(".", 1)[0] not in names):
            continue
        new = _swap(child, name == readout)
        if new is None:
            if type(child).__module__.startswith("unit_scaling"):
                continue
            own = list(child.parameters(recurse=False))
            if own or (not isinstance(child, _STATELESS_OK) and not list(child.children())):
                logger.warning(
                    "unit_scale: kept %s (%s): not supported", name, type(child).__name__
                )
            continue
        if not reinit:
            _copy_params(child, new)
        parent_name, _, attr = name.rpartition(".")
        setattr(names[parent_name] if parent_name else module, attr, new)
        logger.info(
            "unit_scale: replaced %s %s -> %s", name, type(child).__name__, type(new).__name__
        )
    if trace:
        from ._fx import fx_rewrite

        gm = fx_rewrite(module, reinit=reinit)
        if gm is not None and gm.meta["unit_scale_replaced"]:
            return gm
    return module


class _SimulateFormat(TorchFunctionMode):
    """Quantise the floating inputs of matmul-like torch functions (fwd) and their grads (bwd)."""

    def __init__(self, fwd: FPFormat | None, bwd: FPFormat | None) -> None:
        super().__init__()
        self.fwd, self.bwd = fwd, bwd

    def _q(self, t: Any) -> Any:
        if not isinstance(t, Tensor) or not t.is_floating_point():
            return t
        if self.bwd is not None:
            t = self.bwd.quantise_bwd(t)
        if self.fwd is not None:
            t = self.fwd.quantise_fwd(t)
        return t

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        n = _MATMUL_ARGS.get(func)
        if n:
            args = tuple(self._q(a) if i < n else a for i, a in enumerate(args))
            kwargs = {k: self._q(v) if k in _MATMUL_KW else v for k, v in kwargs.items()}
        return func(*args, **kwargs)


# function -> number of leading positional args that are matmul operands
_MATMUL_ARGS: dict[Callable[..., Any], int] = {
    F.linear: 2,
    torch.matmul: 2,
    torch.mm: 2,
    torch.bmm: 2,
    Tensor.__matmul__: 2,
    F.conv1d: 2,
    F.conv2d: 2,
    F.scaled_dot_product_attention: 3,
}
_MATMUL_KW = {"input", "weight", "other", "mat2", "query", "key", "value"}


def simulate_format(
    module: nn.Module, fwd_format: FPFormat | None, bwd_format: FPFormat | None
) -> nn.Module:
    """Simulate low-precision matmuls in ``module`` (in place; returns it).

    Every floating operand of ``F.linear``, ``matmul``/``@``, ``mm``, ``bmm``, ``conv1d``,
    ``conv2d`` and ``scaled_dot_product_attention`` (q, k, v) called during ``module.forward`` is
    rounded to ``fwd_format`` in forward, and the gradients flowing back into those operands are
    rounded to ``bwd_format``. E.g. ``simulate_format(model, E4M3, E5M2)`` is the usual FP8 recipe
    with static unit scales. Pass ``None`` to leave a direction in full precision.
    """
    for f, name in ((fwd_format, "fwd_format"), (bwd_format, "bwd_format")):
        if f is not None and not isinstance(f, FPFormat):
            raise TypeError(f"simulate_format: {name} must be an FPFormat or None, got {f!r}.")
    inner = module.forward

    @functools.wraps(inner)
    def forward(*args: Any, **kwargs: Any) -> Any:
        with _SimulateFormat(fwd_format, bwd_format):
            return inner(*args, **kwargs)

    module.forward = forward  # type: ignore[method-assign]
    return module
