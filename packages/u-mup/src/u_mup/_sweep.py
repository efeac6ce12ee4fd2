"""LR-transfer sweeps and the paper's independent α search (u-μP §5, reference §2.5)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from ._store import SweepStore
from ._train import RunSpec, train_run

__all__ = [
    "ALPHA_NAMES",
    "best_lr",
    "lr_transfer_summary",
    "run_specs",
    "sweep_independent",
    "sweep_lr",
]

ALPHA_NAMES = (
    "alpha_ffn_act",
    "alpha_attn_softmax",
    "alpha_res",
    "alpha_res_attn_ratio",
    "alpha_loss_softmax",
)


def run_specs(store: SweepStore, specs: Sequence[RunSpec], desc: str = "sweep") -> list[dict]:
    """Run every spec not yet in ``store`` (with a rich progress bar); return all their records."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    todo = [s for s in specs if s.key() not in store]
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task(f"{desc} ({len(specs) - len(todo)} cached)", total=len(todo))
        for s in todo:
            bar.update(task, description=f"{desc}: {s.parametrization} w={s.width} lr={s.lr:.3g}")
            store.append(train_run(s))
            bar.advance(task)
    keys = {s.key() for s in specs}
    return [r for r in store.records if RunSpec.from_dict(r["spec"]).key() in keys]


def lr_grid(lo: float, hi: float) -> list[float]:
    """Powers of two from 2^lo to 2^hi (inclusive)."""
    return [2.0**e for e in range(int(lo), int(hi) + 1)]


def sweep_lr(
    store: SweepStore,
    base: RunSpec,
    widths: Iterable[int],
    lrs: Iterable[float],
    seeds: Iterable[int] = (0,),
) -> list[dict]:
    """Train ``base`` at every (width, lr, seed); results go to ``store`` (resumable)."""
    specs = [replace(base, width=w, lr=lr, seed=s) for w in widths for lr in lrs for s in seeds]
    return run_specs(store, specs, "sweep lr")


def _mean_loss(records: Iterable[dict], key) -> dict[Any, float]:
    acc: dict[Any, list[float]] = defaultdict(list)
    for r in records:
        acc[key(r["spec"])].append(math.inf if r["loss"] is None else r["loss"])
    return {k: sum(v) / len(v) for k, v in acc.items()}


def best_lr(records: Iterable[dict]) -> dict[tuple[str, int], tuple[float, float]]:
    """``{(parametrization, width): (argmin lr, seed-mean loss there)}``."""
    mean = _mean_loss(records, lambda s: (s["parametrization"], s["width"], s["lr"]))
    best: dict[tuple[str, int], tuple[float, float]] = {}
    for (p, w, lr), loss in mean.items():
        if (p, w) not in best or loss < best[(p, w)][1]:
            best[(p, w)] = (lr, loss)
    return best


def lr_transfer_summary(records: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """Per parametrization: best LR per width, the argmin shift in log2 grid steps from the
    smallest to the largest width (negative = toward smaller LR), and whether the loss at each
    width's best LR falls monotonically with width."""
    best = best_lr(records)
    out: dict[str, dict[str, Any]] = {}
    for p in sorted({k[0] for k in best}):
        ws = sorted(w for q, w in best if q == p)
        lrs = {w: best[(p, w)][0] for w in ws}
        losses = {w: best[(p, w)][1] for w in ws}
        shift = round(math.log2(lrs[ws[-1]] / lrs[ws[0]]))
        out[p] = {
            "widths": ws,
            "best_lr": {str(w): lrs[w] for w in ws},
            "best_loss": {str(w): losses[w] for w in ws},
            "argmin_shift_steps": shift,
            "max_abs_step_between_widths": max(
                abs(round(math.log2(lrs[a] / lrs[b]))) for a in ws for b in ws
            ),
            "loss_monotone_in_width": all(
                losses[b] <= losses[a] for a, b in itertools.pairwise(ws)
            ),
        }
    return out


def paired_gap(ref: Iterable[dict], alt: Iterable[dict]) -> dict[str, float] | None:
    """Seed-paired loss ratio: mean and standard error over seeds of ``loss(ref)/loss(alt) − 1``.

    Rows of one seed share data order and initial weights, so the per-seed ratio removes most of
    the seed-to-seed variation that a ratio of seed means keeps; the standard error says how much
    of a gap is noise. ``ref`` and ``alt`` are result records (``{"spec": {"seed": ...},
    "loss": ...}``); when a seed has several records on one side the last one counts.

    Returns:
        ``{"mean", "se", "n_seeds"}`` (fractions, e.g. 0.01 = 1 %), or None when fewer than two
        seeds have a finite loss on both sides (a diverged row has ``loss`` None).
    """
    by_seed: dict[int, dict[str, float | None]] = defaultdict(dict)
    for tag, rows in (("ref", ref), ("alt", alt)):
        for r in rows:
            by_seed[r["spec"]["seed"]][tag] = r["loss"]
    xs = [
        d["ref"] / d["alt"] - 1
        for d in by_seed.values()
        if d.get("ref") is not None and d.get("alt") is not None
    ]
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))
    return {"mean": m, "se": se, "n_seeds": len(xs)}


def sweep_independent(
    store: SweepStore,
    base: RunSpec,
    lrs: Iterable[float],
    alpha_values: Iterable[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
    seeds: Iterable[int] = (0,),
    alphas: Sequence[str] = ALPHA_NAMES,
) -> dict[str, Any]:
    """The paper's independent search: sweep η with α = 1; at the best η sweep each α alone;
    combine the per-α argmins and evaluate the combination.

    Returns ``{"best_lr", "default_loss", "alpha_curves": {α: {value: loss}}, "best_alphas",
    "combined_loss", "default_gap": {α: loss(α=1)/min − 1}, "improvement": 1 − combined/default,
    "default_gap_paired": {α: paired_gap(...)}, "improvement_paired": paired_gap(...)}``: the
    ``*_paired`` entries are seed-paired estimates with standard errors (:func:`paired_gap`; None
    with one seed), so a gap can be told apart from seed noise.
    """
    seeds = list(seeds)
    recs = sweep_lr(store, base, [base.width], lrs, seeds)
    ((lr, default_loss),) = best_lr(recs).values()
    curves: dict[str, dict[float, float]] = {}
    stages: dict[str, list[dict]] = {}
    for a in alphas:
        specs = [
            replace(base, lr=lr, seed=s, alphas={**base.alphas, a: v})
            if v != 1.0
            else replace(base, lr=lr, seed=s)
            for v in alpha_values
            for s in seeds
        ]
        rs = run_specs(store, specs, f"sweep {a}")
        stages[a] = rs
        curves[a] = _mean_loss(rs, lambda s, a=a: s["alphas"].get(a, 1.0))
    best_alphas = {a: min(c, key=c.get) for a, c in curves.items()}
    combo = {a: v for a, v in best_alphas.items() if v != 1.0}
    rs = run_specs(
        store,
        [replace(base, lr=lr, seed=s, alphas={**base.alphas, **combo}) for s in seeds],
        "combined",
    )
    combined = sum(math.inf if r["loss"] is None else r["loss"] for r in rs) / len(rs)
    defaults = [r for r in recs if r["spec"]["lr"] == lr]

    def at(a: str, v: float) -> list[dict]:
        return [r for r in stages[a] if r["spec"]["alphas"].get(a, 1.0) == v]

    gap_paired = {a: paired_gap(at(a, 1.0), at(a, b)) for a, b in best_alphas.items()}
    return {
        "best_lr": lr,
        "default_loss": default_loss,
        "alpha_curves": {a: {str(k): v for k, v in c.items()} for a, c in curves.items()},
        "best_alphas": best_alphas,
        "combined_loss": combined,
        "default_gap": {a: c.get(1.0, math.inf) / min(c.values()) - 1 for a, c in curves.items()},
        "improvement": 1 - combined / default_loss,
        "default_gap_paired": gap_paired,
        "improvement_paired": paired_gap(defaults, rs),
    }
