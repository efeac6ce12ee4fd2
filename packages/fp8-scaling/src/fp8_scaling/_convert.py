"""Swap ``nn.Linear`` modules for :class:`Float8Linear` (and back)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from . import _linear
from ._linear import Float8Linear
from ._recipes import ConstantScaling, DelayedScaling, JustInTimeScaling

__all__ = ["convert_to_float8", "revert_to_linear"]

_DEFAULT_SKIP = ("lm_head", "embed")


def _swap(
    model: nn.Module, fn: Callable[[str, nn.Module], nn.Module | None], prefix=""
) -> nn.Module:
    for child_name, child in list(model.named_children()):
        full = f"{prefix}.{child_name}" if prefix else child_name
        new = fn(full, child)
        if new is not None:
            setattr(model, child_name, new)
        else:
            _swap(child, fn, full)
    return model


def _predicted_slower(mod: nn.Linear, tokens: int) -> bool:
    """Whether :meth:`Float8Linear.use_fp8_for` would keep high precision at ``tokens`` rows
    (the same rule, decided once at conversion instead of at every call)."""
    dev = mod.weight.device
    if not _linear.hardware_fp8_supported(dev):
        return False
    return _linear.predict_speedup(tokens, mod.in_features, mod.out_features, device=dev) <= 1.0


def convert_to_float8(
    model: nn.Module,
    recipe: JustInTimeScaling | DelayedScaling | ConstantScaling | None = None,
    module_filter_fn: Callable[[nn.Module, str], bool] | None = None,
    auto_filter: bool = True,
    skip: tuple[str, ...] = _DEFAULT_SKIP,
    tokens: int | None = None,
) -> nn.Module:
    """Replace the ``nn.Linear`` modules of ``model`` (in place) by :class:`Float8Linear`.

    Parameters are shared, not copied, so an optimizer built before or after conversion works.

    Args:
        model: any module; it is modified in place and returned.
        recipe: scaling recipe for every converted layer (default :class:`JustInTimeScaling`).
        module_filter_fn: ``fn(module, fqn) -> bool``; only layers for which it returns True are
            converted (after ``skip`` and the shape rule).
        auto_filter: keep high precision for layers FP8 cannot run (in/out features not
            multiples of 16) and, on FP8 GPUs, for calls whose shape the roofline predicts slower
            (decided per input shape at run time, see :meth:`Float8Linear.use_fp8_for`).
        skip: layers whose qualified name contains one of these substrings stay high precision
            (by default the output head and embeddings, as in Perez et al. 2023).
        tokens: the number of rows M (batch x sequence) the layers will see, if known. With
            ``auto_filter`` on an FP8 GPU, a layer whose roofline predicts no gain at M rows is
            then left as the very ``nn.Linear`` object it was (no wrapper, so the compiled graph,
            guards and kernels are those of the unconverted model), instead of being converted
            and deciding per call. Layers on a CPU are converted as before (emulation).

    Returns:
        ``model``.
    """
    if recipe is not None and not isinstance(
        recipe, (JustInTimeScaling, DelayedScaling, ConstantScaling)
    ):
        raise TypeError(f"recipe must be a scaling recipe, got {type(recipe).__name__}")

    def fn(name: str, mod: nn.Module):
        if type(mod) is not nn.Linear:
            return None
        if any(s in name for s in skip):
            return None
        if auto_filter and (mod.in_features % 16 or mod.out_features % 16):
            return None
        if module_filter_fn is not None and not module_filter_fn(mod, name):
            return None
        if auto_filter and tokens is not None and _predicted_slower(mod, tokens):
            return None
        return Float8Linear.from_linear(mod, recipe, auto_filter=auto_filter, name=name)

    if tokens is not None and (not isinstance(tokens, int) or tokens <= 0):
        raise ValueError(
            f"tokens must be a positive int (rows M of the layers' inputs), got {tokens!r}"
        )

    if type(model) is nn.Linear:
        raise TypeError(
            "convert_to_float8 converts children; wrap a lone nn.Linear with "
            "Float8Linear.from_linear"
        )
    return _swap(model, fn)


def revert_to_linear(model: nn.Module) -> nn.Module:
    """Replace every :class:`Float8Linear` of ``model`` (in place) by a plain ``nn.Linear``."""

    def fn(name: str, mod: nn.Module):
        if not isinstance(mod, Float8Linear):
            return None
        import torch

        with torch.device("meta"):
            lin = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
        lin.weight = mod.weight
        lin.bias = mod.bias
        return lin

    return _swap(model, fn)
