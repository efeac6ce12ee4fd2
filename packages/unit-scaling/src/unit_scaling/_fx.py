"""torch.fx rewriting for ``unit_scale``: inline functional calls and residual adds.

Module swapping (``_transforms``) cannot reach operations written inline in ``forward``
(``F.linear(x, self.w)``, ``q @ k.transpose(-1, -2)``, ``F.softmax``, ``x + f(x)``). When a model
is symbolically traceable, these calls are rewritten into their :mod:`unit_scaling.functional`
counterparts. Residual adds ``x + f(x)`` (one operand an ancestor of the other) become the
τ-weighted pair ``residual_split``/``residual_add`` of Unit Scaling §5.2, with the depth rule of
:func:`unit_scaling.nn.residual_taus` over the residual adds found.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from . import functional as U
from ._transformer import residual_taus

__all__ = ["fx_rewrite"]

logger = logging.getLogger("unit_scaling.transforms")

# torch callable -> unit-scaled replacement (same positional/keyword signature)
_FUNCTIONS: dict[Any, Callable[..., Any]] = {
    F.linear: U.linear,
    F.gelu: U.gelu,
    F.silu: U.silu,
    F.softmax: U.softmax,
    torch.softmax: U.softmax,
    F.scaled_dot_product_attention: U.scaled_dot_product_attention,
    torch.matmul: U.matmul,
    operator.matmul: U.matmul,
    F.layer_norm: U.layer_norm,
    F.rms_norm: U.rms_norm,
    F.embedding: U.embedding,
    F.dropout: U.dropout,
    F.cross_entropy: U.cross_entropy,
    F.mse_loss: U.mse_loss,
    F.conv1d: U.conv1d,
    F.conv2d: U.conv2d,
}
_METHODS: dict[str, Callable[..., Any]] = {"softmax": U.softmax, "matmul": U.matmul}
_ADDS = {operator.add, torch.add, "add"}
# calls that do not change the scale of a tensor: never reported as "not converted"
_NEUTRAL = {
    operator.getitem, getattr, torch.cat, torch.stack, torch.flatten, torch.reshape,
    torch.transpose, torch.permute, torch.split, torch.chunk, torch.unsqueeze, torch.squeeze,
    "view", "reshape", "transpose", "permute", "contiguous", "flatten", "unflatten", "split",
    "chunk", "size", "dim", "to", "float", "half", "bfloat16", "type_as", "unsqueeze",
    "squeeze", "expand", "expand_as", "repeat", "narrow", "select", "clone", "detach", "view_as",
    "masked_fill", "mT", "t",
}  # fmt: skip
_REINIT_WEIGHT = {F.linear: (1, 2), F.embedding: (1, None), F.conv1d: (1, 2), F.conv2d: (1, 2)}


class _Tracer(fx.Tracer):
    """Keeps this package's modules as leaves (their forwards inspect shapes)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if type(m).__module__.startswith("unit_scaling"):
            return True
        return super().is_leaf_module(m, qualname)


def _name(target: Any) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", repr(target))


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    stack = list(node.all_input_nodes)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return seen


def _is_tensor_add(node: fx.Node) -> bool:
    op_ok = node.op in ("call_function", "call_method") and node.target in _ADDS
    return (
        op_ok
        and len(node.args) == 2
        and not node.kwargs
        and all(isinstance(a, fx.Node) for a in node.args)
    )


def _reinit(gm: fx.GraphModule, node: fx.Node) -> None:
    w_i, b_i = _REINIT_WEIGHT[node.target]
    with torch.no_grad():
        for i, init in ((w_i, nn.init.normal_), (b_i, nn.init.zeros_)):
            arg = node.args[i] if i is not None and i < len(node.args) else None
            if isinstance(arg, fx.Node) and arg.op == "get_attr":
                p = functools.reduce(getattr, arg.target.split("."), gm)
                if isinstance(p, torch.Tensor) and p.is_floating_point():
                    init(p)


def _find_residual(graph: fx.Graph, skip_nodes: set[fx.Node]) -> tuple[Any, ...] | None:
    for node in graph.nodes:
        if node in skip_nodes or not _is_tensor_add(node):
            continue
        a, b = node.args
        if a in _ancestors(b):  # type: ignore[arg-type]
            return node, a, b
        if b in _ancestors(a):  # type: ignore[arg-type]
            return node, b, a
        skip_nodes.add(node)
    return None


def _residuals(gm: fx.GraphModule) -> list[str]:
    graph = gm.graph
    n_adds = 0
    for node in graph.nodes:
        if _is_tensor_add(node):
            a, b = node.args
            n_adds += a in _ancestors(b) or b in _ancestors(a)  # type: ignore[arg-type]
    if not n_adds:
        return []
    taus = residual_taus((n_adds + 1) // 2)
    done: list[str] = []
    not_residual: set[fx.Node] = set()
    # one add at a time: each rewrite replaces nodes that later adds refer to
    while (hit := _find_residual(graph, not_residual)) is not None:
        node, skip, branch = hit
        tau = taus[len(done)]
        on_path = _ancestors(branch) | {branch}
        with graph.inserting_after(skip):
            split = graph.call_function(U.residual_split, (skip, tau))
        with graph.inserting_after(split):
            r = graph.call_function(operator.getitem, (split, 0))
        with graph.inserting_after(r):
            s = graph.call_function(operator.getitem, (split, 1))
        for user in list(skip.users):
            if user in on_path and user is not split:
                user.replace_input_with(skip, r)
        with graph.inserting_after(node):
            new = graph.call_function(U.residual_add, (branch, s, tau))
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        done.append(f"{node.name}: {skip.name} + {branch.name} -> residual (tau={tau:.3f})")
    return done


def _shape_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes computing Python ints from tensor shapes (``x.size()``, ``x.shape``, ``d // h``)."""
    out: set[fx.Node] = set()
    for node in graph.nodes:
        size_call = node.op == "call_method" and node.target in ("size", "dim")
        shape_attr = (
            node.op == "call_function" and node.target is getattr and node.args[1] == "shape"
        )
        derived = (
            node.op == "call_function"
            and bool(node.all_input_nodes)
            and all(n in out for n in node.all_input_nodes)
        )
        if size_call or shape_attr or derived:
            out.add(node)
    return out


def fx_rewrite(module: nn.Module, *, reinit: bool = True) -> fx.GraphModule | None:
    """Trace ``module`` and rewrite supported inline calls; ``None`` if tracing fails.

    Returns the rewritten :class:`torch.fx.GraphModule` (sharing submodules and parameters with
    ``module``) or ``None`` when symbolic tracing raised (logged at WARNING). Each replacement
    is logged at INFO; calls that may change tensor scales but have no unit-scaled version are
    logged at WARNING as not converted.
    """
    try:
        graph = _Tracer().trace(module)
    except Exception as exc:
        logger.warning(
            "unit_scale: torch.fx tracing of %s failed (%s: %s); falling back to module "
            "swapping only (inline functional calls are not converted)",
            type(module).__name__, type(exc).__name__, str(exc).splitlines()[0][:200],
        )  # fmt: skip
        return None
    gm = fx.GraphModule(module, graph, type(module).__name__ + "UnitScaled")
    replaced = _residuals(gm)
    shapes = _shape_nodes(gm.graph)
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in _FUNCTIONS:
            if node.target is F.scaled_dot_product_attention and node.kwargs.get("scale"):
                logger.warning(
                    "unit_scale: kept %s (scaled_dot_product_attention with scale=): the "
                    "unit-scaled op uses mult/d_head logits; pass mult instead",
                    node.name,
                )
                continue
            if reinit and node.target in _REINIT_WEIGHT:
                _reinit(gm, node)
            old = _name(node.target)
            node.target = _FUNCTIONS[node.target]
            replaced.append(f"{node.name}: {old} -> unit_scaling.functional.{node.target.__name__}")
        elif node.op == "call_method" and node.target in _METHODS:
            fn = _METHODS[node.target]
            old = f"Tensor.{node.target}"
            with gm.graph.inserting_after(node):
                new = gm.graph.call_function(fn, node.args, dict(node.kwargs))
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
            replaced.append(f"{new.name}: {old} -> unit_scaling.functional.{fn.__name__}")
        elif node.op in ("call_function", "call_method"):
            if getattr(node.target, "__module__", "").startswith("unit_scaling"):
                continue
            if node.target in _NEUTRAL or node.target in _ADDS or node in shapes:
                continue
            logger.warning(
                "unit_scale: kept %s (%s): no unit-scaled version", node.name, _name(node.target)
            )
    for line in replaced:
        logger.info("unit_scale: replaced %s", line)
    gm.graph.lint()
    gm.recompile()
    gm.meta["unit_scale_replaced"] = replaced
    return gm
