"""Winnability estimates: parallel solving of many deals, live progress, resumable store."""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ._rules import Rules, load_rules, rules_from_dict
from ._stats import interval_with_timeouts
from ._store import ResultStore

__all__ = ["Estimate", "plot_estimate", "winnability"]


def _version() -> str:
    from . import __version__

    return __version__


@dataclass
class Estimate:
    """Outcome counts and the 95 % interval (timeouts as losses for ``lo``, wins for ``hi``).

    ``history`` holds ``(decided_so_far, rate, lo, hi)`` after each deal, for plotting.
    """

    game: str
    solved: int = 0
    unsolvable: int = 0
    timeouts: int = 0
    seconds: float = 0.0
    history: list[tuple[int, float, float, float]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.solved + self.unsolvable + self.timeouts

    @property
    def rate(self) -> float:
        d = self.solved + self.unsolvable
        return self.solved / d if d else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return interval_with_timeouts(self.solved, self.unsolvable, self.timeouts)

    def add(self, status: str, seconds: float) -> None:
        if status == "solved":
            self.solved += 1
        elif status == "unsolvable":
            self.unsolvable += 1
        else:
            self.timeouts += 1
        self.seconds += seconds
        lo, hi = self.interval
        self.history.append((self.n, self.rate, lo, hi))

    def summary(self) -> str:
        lo, hi = self.interval
        return (
            f"{self.game}: {100 * self.rate:.2f}% won [{100 * lo:.2f}%, {100 * hi:.2f}%] "
            f"(solved {self.solved}, unsolvable {self.unsolvable}, timeouts {self.timeouts}, "
            f"{self.n} deals)"
        )


def _work(args: tuple) -> tuple[int, str, float, int]:
    raw, name, seed, timeout, memory_limit = args
    from ._solve import solve

    rules = rules_from_dict(raw, name=name)
    res = solve(seed, rules, timeout=timeout, memory_limit=memory_limit)
    return seed, res.status.value, res.stats["seconds"], res.stats["states"]


def _run_local(tasks: list[tuple], jobs: int) -> Iterable[tuple]:
    if jobs == 1:
        for t in tasks:
            yield _work(t)
        return
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(jobs) as pool:
        yield from pool.imap_unordered(_work, tasks, chunksize=1)


def _run_ray(tasks: list[tuple], jobs: int) -> Iterable[tuple]:
    try:
        import ray
    except ImportError:
        raise ImportError(
            "the ray backend needs the optional dependency: pip install 'solvitaire[ray]'"
        ) from None
    if not ray.is_initialized():
        ray.init(num_cpus=jobs, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(_work)
    pending = [remote.remote(t) for t in tasks]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


def winnability(
    rules: Rules | str,
    n_deals: int | None = None,
    *,
    seeds: Iterable[int] | None = None,
    jobs: int = 1,
    timeout: float = 60.0,
    store: str | Path | None = None,
    backend: str = "local",
    halfwidth: float | None = None,
    memory_limit: int = 256 * 2**20,
    progress: bool = True,
) -> Estimate:
    """Estimate the fraction of winnable deals of ``rules`` over seeds ``1..n_deals`` or ``seeds``.

    Deals run in ``jobs`` processes (``backend="local"``) or on a Ray cluster (``"ray"``).
    With ``store`` (a SQLite path) every result is saved at once and stored deals are not run
    again, so a killed run resumes without losing or double-counting deals.
    ``halfwidth`` stops early once the interval's half-width is at most that fraction.
    ``timeout`` is in seconds per deal. Returns an :class:`Estimate`.
    """
    rules = load_rules(rules)
    if seeds is None:
        if n_deals is None or n_deals < 1:
            raise ValueError(f"give n_deals >= 1 or seeds, got n_deals={n_deals!r}")
        seeds = range(1, n_deals + 1)
    seeds = list(seeds)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    est = Estimate(rules.name)
    version = _version()
    db = ResultStore(store) if store else None
    todo = seeds
    if db is not None:
        done = db.done(rules.hash, version)
        for s in seeds:
            if s in done:
                est.add(done[s][0], done[s][1])
        todo = [s for s in seeds if s not in done]
    tasks = [(rules.raw, rules.name, s, timeout, memory_limit) for s in todo]
    runner = _run_ray if backend == "ray" else _run_local
    bar = None
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[est]}"),
            transient=False,
        )
        bar.start()
        task = bar.add_task(rules.name, total=len(seeds), completed=est.n, est="")
    t0 = time.perf_counter()
    try:
        for seed, status, secs, states in runner(tasks, jobs):
            if db is not None:
                db.add(rules.hash, seed, version, rules.name, status, secs, states)
            est.add(status, secs)
            if bar is not None:
                lo, hi = est.interval
                bar.update(
                    task,
                    advance=1,
                    est=f"{100 * est.rate:.1f}% [{100 * lo:.1f}, "
                    f"{100 * hi:.1f}] timeouts {est.timeouts}",
                )
            if halfwidth is not None and est.n >= 10:
                lo, hi = est.interval
                if (hi - lo) / 2 <= halfwidth:
                    break
    finally:
        if bar is not None:
            bar.stop()
        if db is not None:
            db.close()
    est.wall_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    return est


def plot_estimate(est: Estimate, path: str | Path) -> Path:
    """PNG of the running estimate with its interval against the number of deals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [h[0] for h in est.history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(n, [100 * h[1] for h in est.history], label="estimate")
    ax.fill_between(
        n,
        [100 * h[2] for h in est.history],
        [100 * h[3] for h in est.history],
        alpha=0.3,
        label="95% interval (timeouts as loss/win)",
    )
    ax.set_xlabel("deals")
    ax.set_ylabel("winnable (%)")
    ax.set_title(est.summary()[:80])
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
