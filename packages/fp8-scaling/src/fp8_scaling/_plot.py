"""Paper-style plots of recorded scaling biases (Perez et al. 2023, Figures 2-4). Headless (Agg)."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import numpy as np

__all__ = ["plot_bias_distribution", "plot_bias_heatmap", "plot_loss_curves"]


def _records(data: Any) -> list[dict]:
    if hasattr(data, "to_records") and not hasattr(data, "columns"):
        return data.to_records()  # a ScaleRecorder
    if hasattr(data, "to_dict"):
        return data.to_dict("records")  # a DataFrame
    return list(data)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bias_distribution(data: Any, path: str | os.PathLike, title: str = "") -> str:
    """Histogram of the scaling biases per role (weights, activations, gradients).

    Args:
        data: a :class:`ScaleRecorder`, its DataFrame or its list of records.
        path: PNG file to write.
    Returns:
        ``path`` as a string.
    """
    recs = _records(data)
    if not recs:
        raise ValueError("no records to plot; did the recorder see any step?")
    plt = _plt()
    by_role: dict[str, list[float]] = defaultdict(list)
    for r in recs:
        if np.isfinite(r["bias"]):
            by_role[r["role"]].append(r["bias"])
    roles = [r for r in ("weight", "activation", "gradient") if r in by_role]
    fig, axes = plt.subplots(1, len(roles), figsize=(4 * len(roles), 3.2), squeeze=False)
    for ax, role in zip(axes[0], roles):
        b = np.asarray(by_role[role])
        bins = np.arange(b.min() - 0.5, b.max() + 1.5)
        ax.hist(b, bins=bins, color={"weight": "C0", "activation": "C1", "gradient": "C2"}[role])
        ax.set_title(f"{role} (n={b.size})")
        ax.set_xlabel("scaling bias b (scale 2^b)")
    axes[0][0].set_ylabel("count (layer × step)")
    fig.suptitle(title or "Distribution of per-tensor scaling biases")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_bias_heatmap(
    data: Any, path: str | os.PathLike, role: str = "gradient", title: str = ""
) -> str:
    """Heat map of the bias of ``role`` over layers (rows) and recorded steps (columns)."""
    recs = [r for r in _records(data) if r["role"] == role]
    if not recs:
        raise ValueError(f"no records for role {role!r}")
    plt = _plt()
    layers = list(dict.fromkeys(r["layer"] for r in recs))
    steps = sorted({r["step"] for r in recs})
    grid = np.full((len(layers), len(steps)), np.nan)
    li = {n: i for i, n in enumerate(layers)}
    si = {s: i for i, s in enumerate(steps)}
    for r in recs:
        grid[li[r["layer"]], si[r["step"]]] = r["bias"]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(layers) + 2))
    im = ax.imshow(
        grid,
        aspect="auto",
        cmap="viridis",
        interpolation="nearest",
        extent=(steps[0] - 0.5, steps[-1] + 0.5, len(layers) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_xlabel("step")
    fig.colorbar(im, ax=ax, label="scaling bias")
    ax.set_title(title or f"{role} scaling bias per layer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_loss_curves(
    curves: dict[str, list[float]], path: str | os.PathLike, title: str = ""
) -> str:
    """Plot training-loss curves (name → losses per step) on one axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in curves.items():
        ax.plot(np.arange(len(ys)), ys, label=name, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / byte)")
    ax.legend()
    ax.set_title(title or "Training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
