"""Learning-curve plots with seed bands and markdown tables for run directories."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def read_run(run: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Return ``(config, columns)`` of a run directory (``config.json`` + ``metrics.csv``)."""
    run = Path(run)
    cfg_path, m_path = run / "config.json", run / "metrics.csv"
    if not cfg_path.exists() or not m_path.exists():
        raise ValueError(f"{run} is not a run directory (needs config.json and metrics.csv).")
    cfg = json.loads(cfg_path.read_text())
    with open(m_path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = {
        k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rows])
        for k in (rows[0] if rows else {})
    }
    return cfg, cols


def plot_runs(
    runs: list[str | Path], out: str | Path, metric: str = "ep_return_mean"
) -> dict[str, dict]:
    """Plot ``metric`` against env steps, one line per (env, policy) with a ±1 std band over seeds.

    Writes a PNG to ``out`` and returns ``{label: {"final_mean", "final_std", "seeds"}}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)
    for r in runs:
        cfg, cols = read_run(r)
        if cols:
            groups[f"{cfg['env']} {cfg['policy']}"].append(cols)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    summary = {}
    for label, seeds in sorted(groups.items()):
        grid = np.linspace(0, min(s["global_step"][-1] for s in seeds), 100)
        ys = np.stack(
            [
                np.interp(
                    grid, s["global_step"], np.nan_to_num(s[metric], nan=np.nanmin(s[metric]))
                )
                for s in seeds
            ]
        )
        mean, std = ys.mean(0), ys.std(0)
        ax.plot(grid, mean, label=f"{label} (n={len(seeds)})")
        ax.fill_between(grid, mean - std, mean + std, alpha=0.25)
        finals = np.array([np.nanmean(s[metric][-max(1, len(s[metric]) // 10) :]) for s in seeds])
        summary[label] = {
            "final_mean": float(finals.mean()),
            "final_std": float(finals.std()),
            "seeds": len(seeds),
        }
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return summary


def markdown_table(header: list[str], rows: list[list]) -> str:
    """Small markdown table; floats are printed with 3 significant digits."""
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
