"""Klondike (draw 3, thoughtful) over seeds 1..N: every deal within a per-deal limit, mean time.

Resumable: results go to a SQLite store as they arrive, so the run can be killed and restarted
(or left in the background) and ``--report`` writes the partial summary at any time::

    python packages/solvitaire/benchmarks/klondike_1000.py --deals 1000 --jobs 1 --timeout 60
    python packages/solvitaire/benchmarks/klondike_1000.py --report     # partial results now

Writes ``results/klondike_1000.md`` and ``results/klondike_1000.png`` (time per deal, sorted)
beside this file. The figure to compare with is the specialised Klondike solver's average of
about 0.1 s per deal with no deal left undecided.
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _rows(store: Path, n: int) -> list[tuple[int, str, float, int]]:
    if not store.exists():
        return []
    con = sqlite3.connect(store)
    try:
        rows = con.execute(
            "SELECT seed, status, seconds, states FROM results WHERE seed BETWEEN 1 AND ?", (n,)
        ).fetchall()
    finally:
        con.close()
    return sorted(rows)


def report(store: Path, n: int, timeout: float, jobs: int, note: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from solvitaire import interval_with_timeouts

    rows = _rows(store, n)
    if not rows:
        return "no results yet"
    secs = [r[2] for r in rows]
    won = sum(r[1] == "solved" for r in rows)
    lost = sum(r[1] == "unsolvable" for r in rows)
    tout = sum(r[1] == "timed-out" for r in rows)
    lo, hi = interval_with_timeouts(won, lost, tout)
    q = statistics.quantiles(secs, n=100, method="inclusive") if len(secs) > 1 else secs * 99
    lines = [
        f"# Klondike (draw 3) seeds 1..{n}: {len(rows)} deals done",
        "",
        f"- machine: {platform.processor() or platform.machine()}, jobs={jobs}, "
        f"limit {timeout:g} s per deal; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- solved {won}, unsolvable {lost}, timed out {tout}",
        f"- winnable: {100 * won / max(won + lost, 1):.2f} % "
        f"(95 % interval with timeouts {100 * lo:.2f}-{100 * hi:.2f} %)",
        f"- mean time per deal {statistics.fmean(secs):.3f} s, median {statistics.median(secs):.4f}"
        f" s, p95 {q[94]:.3f} s, max {max(secs):.2f} s (search time, one core per job)",
        f"- states searched: mean {statistics.fmean(r[3] for r in rows):,.0f}",
        "- a specialised Klondike-only solver averages about 0.1 s per deal with none undecided",
    ]
    if note:
        lines.append(f"- {note}")
    RESULTS.mkdir(exist_ok=True)
    md = RESULTS / "klondike_1000.md"
    md.write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(range(1, len(secs) + 1), sorted(secs), label="this solver")
    ax.axhline(0.1, color="grey", ls="--", label="specialised solver, mean 0.1 s")
    ax.axhline(timeout, color="red", ls=":", label=f"limit {timeout:g} s")
    ax.set_xlabel("deals (sorted by time)")
    ax.set_ylabel("seconds per deal")
    ax.set_title(f"Klondike draw 3, {len(rows)} deals")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "klondike_1000.png", dpi=100)
    plt.close(fig)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per deal")
    ap.add_argument("--store", type=Path, default=RESULTS / "klondike_1000.sqlite")
    ap.add_argument("--memory-mib", type=int, default=3072, help="per-deal memory limit")
    ap.add_argument("--report", action="store_true", help="only summarise what is stored")
    ap.add_argument("--note", default="", help="a line added to the report (e.g. machines)")
    a = ap.parse_args(argv)
    if not a.report:
        from solvitaire import load_rules, solve, winnability

        rules = load_rules("klondike")
        solve(1, rules, max_states=10)  # compile once before the workers fork
        a.store.parent.mkdir(parents=True, exist_ok=True)
        winnability(
            rules,
            a.deals,
            jobs=a.jobs,
            timeout=a.timeout,
            store=a.store,
            memory_limit=a.memory_mib * 2**20,
        )
    print(report(a.store, a.deals, a.timeout, a.jobs, a.note))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
