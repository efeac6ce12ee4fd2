"""``ScaleRecorder``: per-layer, per-role, per-step scale telemetry (Perez et al. 2023, Figs. 2-4).

For every linear layer and role (``weight``, ``activation``, ``gradient``) it records, every
``every`` steps: the scaling bias the layer's recipe uses, the tensor's amax, the percentage of
non-zero values that underflow to zero in FP8, and the percentage that saturate. Statistics stay on
the device until read (one host sync per read).
"""

from __future__ import annotations

import contextlib
import csv
import os
from typing import Any

import torch
from torch import nn

from ._formats import FP8Format
from ._linear import Float8Linear
from ._linear_fn import history_bias
from ._recipes import ConstantScaling, DelayedScaling, JustInTimeScaling
from ._scaling import amax, compute_bias

__all__ = ["ROLES", "ScaleRecorder"]

ROLES = ("weight", "activation", "gradient")
_ROW = {"activation": 0, "weight": 1, "gradient": 2}
_FIELDS = ("layer", "role", "step", "bias", "amax", "underflow_pct", "saturated_pct")


def _bias_for(mod: nn.Module, role: str, a: torch.Tensor) -> tuple[torch.Tensor, FP8Format]:
    recipe = getattr(mod, "recipe", None) or JustInTimeScaling()
    grad = role == "gradient"
    fmt = recipe.formats.backward if grad else recipe.formats.forward
    margin = recipe.grad_margin if grad else recipe.margin
    if isinstance(recipe, DelayedScaling) and getattr(mod, "fp8_amax_history", None) is not None:
        return history_bias(mod.fp8_amax_history[_ROW[role]], recipe, fmt, margin), fmt
    if isinstance(recipe, ConstantScaling):
        b = recipe.grad_bias if (grad and recipe.grad_bias is not None) else recipe.bias
        return torch.full((), float(b), device=a.device), fmt
    return compute_bias(a, fmt, margin), fmt


@torch.no_grad()
def _stats(mod: nn.Module, role: str, t: torch.Tensor) -> torch.Tensor:
    a = amax(t)
    b, fmt = _bias_for(mod, role, a)
    xs = t.float().abs() * torch.exp2(b)
    nz = t != 0
    n_nz = nz.sum().clamp_min(1)
    # below half the smallest subnormal a value rounds to zero (ties to even: exactly half too)
    under = (nz & (xs <= fmt.min_subnormal / 2)).sum() * 100.0 / n_nz
    sat = (xs > fmt.max).sum() * 100.0 / max(t.numel(), 1)
    return torch.stack([b.float(), a, under.float(), sat.float()])


class ScaleRecorder:
    """Record scale statistics of a model's linear layers during training or inference.

    Usage::

        rec = ScaleRecorder(model, every=100)
        for batch in data:
            loss = model(batch).mean(); loss.backward(); opt.step()
            rec.step()
        df = rec.to_dataframe()  # layer, role, step, bias, amax, underflow_pct, saturated_pct

    Args:
        model: module whose ``Float8Linear`` layers (or, if it has none, ``nn.Linear`` layers,
            judged with the default JIT recipe) are observed.
        every: record on steps ``0, every, 2*every, ...``.
        roles: subset of ``("weight", "activation", "gradient")``.
    """

    def __init__(self, model: nn.Module, every: int = 1, roles: tuple[str, ...] = ROLES) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        bad = set(roles) - set(ROLES)
        if bad:
            raise ValueError(f"unknown roles {sorted(bad)}; expected a subset of {ROLES}")
        self.every, self.roles = every, tuple(roles)
        self._step = 0
        self._paused = False
        self._rows: list[tuple[str, str, int, torch.Tensor]] = []
        self._handles: list[Any] = []
        mods = [(n, m) for n, m in model.named_modules() if isinstance(m, Float8Linear)]
        if not mods:
            mods = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not mods:
            raise ValueError("ScaleRecorder found no Float8Linear or nn.Linear layer in the model")
        for name, mod in mods:
            self._handles.append(mod.register_forward_pre_hook(self._fwd_hook(name)))
            if "gradient" in self.roles:
                self._handles.append(mod.register_full_backward_pre_hook(self._bwd_hook(name)))
        self.layers = [n for n, _ in mods]

    @property
    def active(self) -> bool:
        """Whether the current step is recorded."""
        return not self._paused and self._step % self.every == 0

    @contextlib.contextmanager
    def paused(self):
        """Context manager: record nothing inside (e.g. warm-up runs or CUDA-graph capture)."""
        old, self._paused = self._paused, True
        try:
            yield self
        finally:
            self._paused = old

    def _fwd_hook(self, name: str):
        def hook(mod, args):
            if not self.active or not torch.is_tensor(args[0]):
                return
            if "activation" in self.roles:
                self._rows.append(
                    (name, "activation", self._step, _stats(mod, "activation", args[0]))
                )
            if "weight" in self.roles:
                self._rows.append((name, "weight", self._step, _stats(mod, "weight", mod.weight)))

        return hook

    def _bwd_hook(self, name: str):
        def hook(mod, grad_output):
            if self.active and grad_output[0] is not None:
                self._rows.append(
                    (name, "gradient", self._step, _stats(mod, "gradient", grad_output[0]))
                )

        return hook

    def step(self) -> None:
        """Advance the step counter (call once per optimizer step)."""
        self._step += 1

    def remove(self) -> None:
        """Detach all hooks (recorded data is kept)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def to_records(self) -> list[dict[str, Any]]:
        """All rows as dicts: layer, role, step, bias, amax, underflow_pct, saturated_pct."""
        if not self._rows:
            return []
        vals = torch.stack([r[3].cpu() for r in self._rows]).tolist()
        return [dict(zip(_FIELDS, (*r[:3], *v))) for r, v in zip(self._rows, vals)]

    def to_dataframe(self):
        """The records as a ``pandas.DataFrame`` (needs the ``pandas`` extra)."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("to_dataframe needs pandas: pip install 'fp8-scaling[pandas]'") from e
        return pd.DataFrame(self.to_records(), columns=list(_FIELDS))

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the records to a CSV file (no pandas needed)."""
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(_FIELDS))
            w.writeheader()
            w.writerows(self.to_records())
