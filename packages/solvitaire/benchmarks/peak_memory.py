"""Peak memory per game: maximum resident set of one process solving the reference's seeds.

For each game a fresh process imports the package, compiles the search (numba), solves one
trivial deal (the *baseline* peak: interpreter, numpy, numba/LLVM) and then every seed of
``outcomes/<game>.tsv`` at the reference's 3 s limit; the *peak* is the process's maximum
resident set (``ru_maxrss``) at the end. The search itself needs 16 bytes per stored state (the
transposition table, grown by doubling) plus the DFS stacks, so ``peak - baseline`` is what the
search added. The reference's files record states, not memory; its cache stores each state as a
byte vector in a hash index with an LRU list, so its peak grows with the unique states it
lists (the column ``ref unique states, max``)::

    python packages/solvitaire/benchmarks/peak_memory.py [--games klondike free-cell ...]

Writes ``results/peak_memory_<date>_cpu.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2].parent / "shared" / "solvitaire" / "outcomes"
GAMES = ["klondike", "klondike-deal-1", "free-cell", "black-hole", "canfield", "spiderette",
         "bakers-game", "golf", "spanish-patience", "alpha-star"]  # fmt: skip

_CHILD = """
import json, resource, sys
from solvitaire import load_rules, solve
game, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
rules = load_rules(game)
solve(seeds[0], rules, max_states=10)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
uniq = []
for s in seeds:
    uniq.append(solve(s, rules, timeout=3.0).stats["unique_states"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kib": base, "peak_kib": peak, "max_unique": max(uniq)}))
"""


def measure(game: str) -> dict:
    with open(SHARED / f"{game}.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    seeds = [r["seed"] for r in rows]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, game, *seeds], capture_output=True, text=True, check=True
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["ref_max_unique"] = max(int(r["unique_states"]) for r in rows)
    res["deals"] = len(rows)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", nargs="*", default=GAMES)
    a = ap.parse_args(argv)
    lines = [
        f"# Peak memory ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU)",
        "",
        "One process per game: seeds of `outcomes/<game>.tsv` at 3 s each. `baseline` = maximum",
        "resident set after import and compilation; `peak` = after all seeds; MiB.",
        "",
        "| game | deals | baseline MiB | peak MiB | search added MiB | our unique states, max "
        "| reference unique states, max |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in a.games:
        r = measure(g)
        b, p = r["base_kib"] / 1024, r["peak_kib"] / 1024
        lines.append(
            f"| {g} | {r['deals']} | {b:.0f} | {p:.0f} | {p - b:.0f} | {r['max_unique']:,} "
            f"| {r['ref_max_unique']:,} |"
        )
        print(lines[-1], flush=True)
    out = HERE / "results" / f"peak_memory_{time.strftime('%Y-%m-%d')}_cpu.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
