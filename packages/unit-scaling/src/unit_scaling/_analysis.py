"""Scale analysis for any ``nn.Module``: RMS of every activation, activation gradient, weight and
weight gradient after one forward/backward pass (Unit Scaling §3, Figure 1-style reports)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ScaleRecord", "ScaleReport", "assert_unit_scaled", "plot_scales", "scale_report"]

KINDS = ("activation", "activation_grad", "weight", "weight_grad")


@dataclass(frozen=True)
class ScaleRecord:
    """One tensor's scale: ``name`` (module or parameter path), ``kind`` (one of
    activation/activation_grad/weight/weight_grad), ``rms`` (fp32), ``numel``."""

    name: str
    kind: str
    rms: float
    numel: int

    @property
    def log2_rms(self) -> float:
        return math.log2(self.rms) if self.rms > 0 else float("-inf")


class ScaleReport(list):  # type: ignore[type-arg]
    """A list of :class:`ScaleRecord` with summary helpers.

    Exactly-zero tensors (zero-initialised biases, unused rows) carry no scale information and are
    excluded from :meth:`fraction_within` and :meth:`outside`.
    """

    def nonzero(self) -> list[ScaleRecord]:
        return [r for r in self if r.rms > 0]

    def fraction_within(self, lo: float = 0.5, hi: float = 2.0) -> float:
        """Fraction of (non-zero) tensors with ``lo <= rms <= hi``."""
        recs = self.nonzero()
        return sum(lo <= r.rms <= hi for r in recs) / max(len(recs), 1)

    def outside(self, lo: float = 0.5, hi: float = 2.0) -> list[ScaleRecord]:
        """The (non-zero) records with RMS outside ``[lo, hi]``."""
        return [r for r in self.nonzero() if not lo <= r.rms <= hi]

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self]

    def to_dataframe(self) -> Any:
        """A pandas DataFrame (columns name, kind, rms, numel, log2_rms); needs pandas."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "ScaleReport.to_dataframe needs pandas: pip install 'unit-scaling[analysis]'."
            ) from e
        df = pd.DataFrame(self.to_records(), columns=["name", "kind", "rms", "numel"])
        df["log2_rms"] = [r.log2_rms for r in self]
        return df


def _rms(t: Tensor) -> float:
    return float(t.detach().float().pow(2).mean().sqrt())


def _tensors(out: Any) -> Iterable[Tensor]:
    if isinstance(out, Tensor):
        yield out
    elif isinstance(out, (tuple, list)):
        for o in out:
            yield from _tensors(o)
    elif isinstance(out, dict):
        for o in out.values():
            yield from _tensors(o)


def _call(model: nn.Module, batch: Any) -> Any:
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def scale_report(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
    *,
    backward: bool = True,
) -> ScaleReport:
    """Run one forward and backward pass and record the RMS of every tensor.

    Args:
        model: any module (not only unit-scaled ones).
        batch: the model input: a tensor, a tuple (``model(*batch)``) or a dict
            (``model(**batch)``).
        loss_fn: ``loss_fn(output, batch) -> scalar``; if ``None``, backpropagate a unit-normal
            gradient from the output (the unit-scaling convention).
        backward: set ``False`` for activations and weights only.

    Returns:
        A :class:`ScaleReport` ordered activations (forward order), activation gradients,
        weights, weight gradients. Activations are the floating outputs of every submodule
        (a tensor shared by nested modules is recorded once, under the innermost module).
        Parameter ``.grad`` values present before the call are restored afterwards.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"scale_report expects an nn.Module, got {type(model).__name__}.")
    acts: list[tuple[str, Tensor]] = []
    grads: dict[int, tuple[str, Tensor]] = {}
    seen: set[int] = set()
    keep: list[Tensor] = []  # hold the outputs so that their ids are not reused during forward

    def make_hook(name: str) -> Callable[..., None]:
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            for i, t in enumerate(_tensors(out)):
                if not t.is_floating_point() or id(t) in seen:
                    continue
                seen.add(id(t))
                keep.append(t)
                label = name if i == 0 else f"{name}[{i}]"
                idx = len(acts)
                acts.append((label, t.detach()))
                if backward and t.requires_grad:
                    t.register_hook(lambda g, _i=idx, _l=label: grads.__setitem__(_i, (_l, g)))

        return hook

    handles = [
        m.register_forward_hook(make_hook(name or type(model).__name__))
        for name, m in model.named_modules()
    ]
    params = [(n, p) for n, p in model.named_parameters()]
    saved = {n: p.grad for n, p in params}
    for _, p in params:
        p.grad = None
    try:
        out = _call(model, batch)
        if backward:
            if loss_fn is not None:
                loss_fn(out, batch).backward()
            else:
                t = next(iter(_tensors(out)))
                t.backward(torch.randn_like(t))
    finally:
        for h in handles:
            h.remove()
    report = ScaleReport()
    report += [ScaleRecord(n, "activation", _rms(t), t.numel()) for n, t in acts]
    report += [
        ScaleRecord(grads[i][0], "activation_grad", _rms(grads[i][1]), grads[i][1].numel())
        for i in sorted(grads)
    ]
    report += [ScaleRecord(n, "weight", _rms(p), p.numel()) for n, p in params]
    if backward:
        report += [
            ScaleRecord(n, "weight_grad", _rms(p.grad), p.numel())
            for n, p in params
            if p.grad is not None
        ]
    for n, p in params:
        p.grad = saved[n]
    return report


def assert_unit_scaled(
    model: nn.Module,
    batch: Any,
    lo: float = 0.5,
    hi: float = 2.0,
    frac: float = 0.95,
    *,
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
) -> ScaleReport:
    """Assert that at least ``frac`` of the model's (non-zero) tensors have RMS in ``[lo, hi]``.

    Raises:
        AssertionError: listing every offending tensor (name, kind, RMS) and the fraction found.
    Returns:
        The :class:`ScaleReport` on success.
    """
    report = scale_report(model, batch, loss_fn)
    f = report.fraction_within(lo, hi)
    if f < frac:
        bad = "\n".join(f"  {r.kind:16s} {r.name}: rms={r.rms:.3g}" for r in report.outside(lo, hi))
        raise AssertionError(
            f"only {f:.1%} of tensors have RMS in [{lo}, {hi}] (required {frac:.0%}); "
            f"offending tensors:\n{bad}"
        )
    return report


def plot_scales(report: ScaleReport, path: str, title: str = "tensor scales") -> str:
    """Save a PNG bar chart of log2 RMS per tensor, coloured by kind, with the [1/2, 2] band.

    Needs matplotlib (``pip install 'unit-scaling[analysis]'``). Returns ``path``.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plot_scales needs matplotlib: pip install 'unit-scaling[analysis]'."
        ) from e
    recs = report.nonzero()
    colors = dict(zip(KINDS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.12 * len(recs))))
    ys = range(len(recs))
    ax.barh(list(ys), [r.log2_rms for r in recs], color=[colors[r.kind] for r in recs])
    ax.axvspan(-1, 1, color="grey", alpha=0.2, label="RMS in [1/2, 2]")
    ax.set_yticks(list(ys), [f"{r.kind[:4]} {r.name}" for r in recs], fontsize=5)
    ax.invert_yaxis()
    ax.set_xlabel("log2 RMS")
    ax.set_title(title)
    for k, c in colors.items():
        ax.barh([0], [0], color=c, label=k)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
