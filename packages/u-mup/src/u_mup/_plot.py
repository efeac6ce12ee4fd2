"""Paper-style figures: loss vs LR per width (one panel per parametrization) and loss vs each α."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["plot_sweep"]


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sweep(records: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Write a PNG: for each parametrization, seed-mean final loss vs log2 LR, one line per width
    (default α's only); then, if α-sweep runs are present, loss vs each α (log2 axis).

    Returns the path. Diverged runs are drawn as missing points.
    """
    plt = _mpl()
    lr_runs = [r for r in records if not r["spec"].get("alphas")]
    alpha_runs = [r for r in records if r["spec"].get("alphas")]
    params = sorted({r["spec"]["parametrization"] for r in lr_runs})
    alpha_names = sorted({a for r in alpha_runs for a in r["spec"]["alphas"]})
    n = max(1, len(params) + len(alpha_names))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    ax_i = 0
    for p in params:
        ax = axes[0][ax_i]
        ax_i += 1
        acc: dict[tuple[int, float], list[float]] = defaultdict(list)
        for r in lr_runs:
            s = r["spec"]
            if s["parametrization"] == p:
                acc[(s["width"], s["lr"])].append(math.nan if r["loss"] is None else r["loss"])
        widths = sorted({w for w, _ in acc})
        cmap = plt.get_cmap("viridis")
        finite = [v for vs in acc.values() for v in vs if math.isfinite(v)]
        for j, w in enumerate(widths):
            lrs = sorted(lr for ww, lr in acc if ww == w)
            ys = [sum(acc[(w, lr)]) / len(acc[(w, lr)]) for lr in lrs]
            c = cmap(j / max(1, len(widths) - 1))
            ax.plot([math.log2(x) for x in lrs], ys, "o-", color=c, label=f"width {w}", ms=3)
            ok = [(lr, y) for lr, y in zip(lrs, ys) if math.isfinite(y)]
            if ok:
                lr_b, y_b = min(ok, key=lambda t: t[1])
                ax.plot([math.log2(lr_b)], [y_b], "*", color=c, ms=12, mec="k")
        if finite:
            lo = min(finite)
            ax.set_ylim(lo - 0.05 * abs(lo), lo + max(0.6, 0.25 * abs(lo)))
        ax.set_xlabel("log2 learning rate η")
        ax.set_ylabel("final training loss (nats/byte)")
        ax.set_title(p)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for a in alpha_names:
        ax = axes[0][ax_i]
        ax_i += 1
        acc2: dict[float, list[float]] = defaultdict(list)
        for r in records:
            s = r["spec"]
            if set(s.get("alphas", {})) <= {a} and s["parametrization"] == "umup":
                v = s.get("alphas", {}).get(a, 1.0)
                acc2[v].append(math.nan if r["loss"] is None else r["loss"])
        xs = sorted(acc2)
        ax.plot([math.log2(x) for x in xs], [sum(acc2[x]) / len(acc2[x]) for x in xs], "o-")
        ax.axvline(0.0, color="grey", ls="--", lw=0.8)
        ax.set_xlabel(f"log2 {a}")
        ax.set_ylabel("final training loss")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
