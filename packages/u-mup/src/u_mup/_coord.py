"""Coord check (μP §J / reference §3.5): does each layer's activation scale stay width-independent
after a few optimizer steps?"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._optim import param_groups

__all__ = ["CoordCheckResult", "coord_check"]


@dataclass
class CoordCheckResult:
    """Output of :func:`coord_check`.

    Attributes:
        records: one dict per (width, step, layer) with the activation ``rms``.
        ratios: ``{(step, layer): rms(widest) / rms(narrowest)}``.
        bound: the allowed ratio band ``[1/bound, bound]``.
        passed: every ratio of the checked layers is inside the band.
        worst: the (step, layer, ratio) furthest from 1 (in log space).
    """

    records: list[dict[str, Any]]
    ratios: dict[tuple[int, str], float]
    bound: float
    passed: bool
    worst: tuple[int, str, float]
    widths: list[int] = field(default_factory=list)

    def max_ratio_by_step(self) -> dict[int, float]:
        """Largest ratio-or-inverse per step."""
        out: dict[int, float] = {}
        for (s, _), r in self.ratios.items():
            out[s] = max(out.get(s, 1.0), max(r, 1 / r) if r > 0 else math.inf)
        return out

    def plot(self, path: str | Path, title: str = "coord check") -> Path:
        """PNG: activation RMS vs width (log-log), one panel per step, one line per layer."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = sorted({r["step"] for r in self.records})
        layers = list(dict.fromkeys(r["layer"] for r in self.records))
        fig, axes = plt.subplots(1, len(steps), figsize=(3.6 * len(steps), 3.2), squeeze=False)
        for ax, s in zip(axes[0], steps):
            for layer in layers:
                pts = sorted(
                    (r["width"], r["rms"])
                    for r in self.records
                    if r["step"] == s and r["layer"] == layer
                )
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, label=layer)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log", base=2)
            ax.set_title(f"after {s} step(s)")
            ax.set_xlabel("width")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("activation RMS")
        axes[0][-1].legend(fontsize=6)
        fig.suptitle(f"{title}: {'PASS' if self.passed else 'FAIL'} (band ×{self.bound})")
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _rms(t: Tensor) -> float:
    return float(t.detach().float().pow(2).mean().sqrt())


def _activations(model: nn.Module, idx: Tensor) -> dict[str, float]:
    with torch.no_grad():
        if hasattr(model, "hidden_states"):
            hs = model.hidden_states(idx)
            out = {"embedding" if i == 0 else f"block {i - 1}": _rms(h) for i, h in enumerate(hs)}
            out["logits"] = _rms(model(idx))
            return out
        acts: dict[str, float] = {}
        hooks = [
            m.register_forward_hook(
                lambda _m, _i, o, n=n: (
                    acts.__setitem__(n, _rms(o)) if isinstance(o, Tensor) else None
                )
            )
            for n, m in model.named_modules()
            if n and not list(m.children())
        ]
        try:
            model(idx)
        finally:
            for h in hooks:
                h.remove()
        return acts


def coord_check(
    builder: Callable[[int], nn.Module],
    widths: Sequence[int],
    steps: Iterable[int] = (1, 5, 20),
    lr: float = 1.0,
    *,
    batches: Callable[[int], tuple[Tensor, Tensor]] | None = None,
    loss_fn: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None,
    bound: float = 1.3,
    layers: Callable[[str], bool] | None = None,
    optimizer: str = "adam",
    seed: int = 0,
) -> CoordCheckResult:
    """Train a model of each width with Adam (u-μP/μP/SP per-parameter LRs from its roles) and
    compare activation RMS across widths after each number of ``steps``.

    Args:
        builder: ``width -> model``. Models with ``hidden_states(idx)`` (our :class:`Decoder`)
            report the residual stream after the embedding and each block plus the logits;
            others report every leaf module's output.
        widths: ≥ 2 distinct widths; each built model must report that width (``cfg.width``).
        steps: numbers of optimizer steps after which to measure (e.g. 1, 5, 20).
        lr: global η for :func:`u_mup.param_groups`.
        batches: ``step -> (idx, targets)``; default: random windows of the stdlib corpus,
            batch 4 × 32 (the same batches for every width).
        loss_fn: ``(model, idx, targets) -> loss``; default ``model.loss``.
        bound: pass band ``[1/bound, bound]`` for RMS(widest)/RMS(narrowest).
        layers: predicate selecting the layers that decide the verdict (default: the blocks).

    Raises:
        ValueError: fewer than 2 widths, duplicates, or a model whose width differs from the
            requested one.
    """
    ws = list(widths)
    if len(ws) < 2 or len(set(ws)) != len(ws) or any(int(w) != w or w < 1 for w in ws):
        raise ValueError(f"coord_check needs >= 2 distinct positive widths, got {ws}")
    ws = sorted(ws)
    steps = sorted(set(int(s) for s in steps))
    if not steps or steps[0] < 0:
        raise ValueError(f"steps must be non-negative ints, got {steps}")
    if batches is None:
        from ._data import stdlib_corpus

        corpus = stdlib_corpus(max_bytes=1_000_000, seed=seed)

        def batches(step: int) -> tuple[Tensor, Tensor]:
            return corpus.batch(step, 4, 32)

    loss_fn = loss_fn or (lambda m, x, y: m.loss(x, y))
    layers = layers or (lambda name: name.startswith("block"))
    eval_idx, _ = batches(10_000)
    records: list[dict[str, Any]] = []
    for w in ws:
        torch.manual_seed(seed)
        model = builder(w)
        got = getattr(getattr(model, "cfg", None), "width", w)
        if got != w:
            raise ValueError(
                f"coord_check: builder({w}) returned a model of width {got}; the builder must "
                "build the width it is given"
            )
        opt = torch.optim.Adam(param_groups(model, lr, 0.0, optimizer), lr=lr)
        done = 0
        for target in steps:
            while done < target:
                x, y = batches(done)
                opt.zero_grad(set_to_none=True)
                loss_fn(model, x, y).backward()
                opt.step()
                done += 1
            for name, rms in _activations(model, eval_idx).items():
                records.append({"width": w, "step": target, "layer": name, "rms": rms})
    lo, hi = ws[0], ws[-1]
    by = {(r["width"], r["step"], r["layer"]): r["rms"] for r in records}
    ratios: dict[tuple[int, str], float] = {}
    for r in records:
        if r["width"] == hi and (lo, r["step"], r["layer"]) in by:
            den = by[(lo, r["step"], r["layer"])]
            ratios[(r["step"], r["layer"])] = r["rms"] / den if den > 0 else math.inf
    checked = {k: v for k, v in ratios.items() if layers(k[1])}
    if not checked:
        raise ValueError("coord_check: no layer matched the `layers` predicate")

    def dev(v: float) -> float:
        return abs(math.log(v)) if 0 < v < math.inf else math.inf

    (ws_, wl), wr = max(checked.items(), key=lambda kv: dev(kv[1]))
    passed = all(1 / bound <= v <= bound for v in checked.values())
    return CoordCheckResult(records, ratios, bound, passed, (ws_, wl, wr), ws)
