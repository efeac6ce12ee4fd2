"""Sweep toolkit used by the ``umup`` CLI: run specs, training, resumable store, plots."""

from ._batched import Variant, train_batched
from ._plot import plot_sweep
from ._store import SweepStore
from ._sweep import best_lr, lr_transfer_summary, paired_gap, sweep_independent, sweep_lr
from ._train import RunSpec, build_model, train_run

__all__ = [
    "RunSpec",
    "SweepStore",
    "Variant",
    "best_lr",
    "build_model",
    "lr_transfer_summary",
    "paired_gap",
    "plot_sweep",
    "sweep_independent",
    "sweep_lr",
    "train_batched",
    "train_run",
]
