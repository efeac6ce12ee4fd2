"""Throughput against the reference program's recorded times (outcomes/*.tsv, seeds 1-40).

The baseline is the reference's summed wall time over the deals it decided; the candidate solves
the same deals with a 3 s limit. `extra` records deals/s, states/s and agreement counts.
"""

from __future__ import annotations

import csv
from pathlib import Path

from monobench import Measure, case

from solvitaire import load_rules, solve

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "solvitaire" / "outcomes"
GAMES = [
    "klondike",
    "klondike-deal-1",
    "free-cell",
    "black-hole",
    "canfield",
    "spiderette",
    "bakers-game",
    "golf",
]


def _rows(game: str, n: int) -> list[dict]:
    with open(SHARED / f"{game}.tsv") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["outcome"] != "timed-out"]
    return rows[:n]


@case(
    "solve_reference_seeds",
    params=[{"game": g, "n": 40} for g in GAMES],
    quick_params=[{"game": g, "n": 5} for g in ("klondike", "free-cell", "golf")],
    devices=("cpu",),
)
def bench_solve(game: str, n: int, device: str) -> Measure:
    rules = load_rules(game)
    rows = _rows(game, n)
    solve(int(rows[0]["seed"]), rules, max_states=10)  # compile outside the timing
    stats: dict = {"agree": 0, "disagree": 0, "our_timeouts": 0, "states": 0, "deals": len(rows)}

    def run() -> None:
        stats.update(agree=0, disagree=0, our_timeouts=0, states=0)
        for r in rows:
            res = solve(int(r["seed"]), rules, timeout=3.0)
            stats["states"] += res.stats["states"]
            if res.status.value == "timed-out":
                stats["our_timeouts"] += 1
            elif res.status.value == r["outcome"]:
                stats["agree"] += 1
            else:
                stats["disagree"] += 1

    def check() -> None:
        run()
        if stats["disagree"]:
            raise AssertionError(
                f"{game}: {stats['disagree']} outcomes disagree with the reference"
            )

    ref_s = sum(int(r["ms"]) for r in rows) / 1000 or 1e-3
    return Measure(
        candidate=run,
        baseline_seconds=ref_s,
        candidate_label="solvitaire (numba)",
        baseline_label="reference C++ (recorded)",
        warmup=0,
        repeats=1,
        extra=stats,
        check=check,
    )
