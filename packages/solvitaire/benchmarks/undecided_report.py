"""Table of the Klondike seeds left undecided at 60 s: earlier runs against a new box run.

Usage (here, after a ``box_run.sh`` run of those seeds):
``python benchmarks/undecided_report.py results/box_run_<stamp>_h200-host-cpu [--label L]``
writes ``results/klondike_undecided_<stamp>.{md,json}`` with, per seed, the 255 s run of
2026-11-30 02:57 UTC (the old code: states to decide, or states in 255 s) and the new run
(states, seconds, states per second, unique states).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OLD_255 = HERE / "results" / "box_run_2026-11-30-0257_h200-host-cpu" / "klondike.jsonl"
DECIDED = ("solved", "unsolvable")


def _rows(path: Path) -> dict[int, dict]:
    return {r["seed"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def report(run_dir: Path, label: str) -> tuple[str, dict]:
    """Markdown table and JSON summary comparing ``run_dir``'s Klondike rows with the 255 s
    run of the old code."""
    old = _rows(OLD_255)
    new = _rows(run_dir / "klondike.jsonl")
    lines = [
        f"# Klondike seeds undecided at 60 s: {label}",
        "",
        f"New run: `{run_dir.name}` (one job per core). Old: the 255 s run of 02:57 UTC "
        "(`box_run_2026-11-30-0257_h200-host-cpu/`, code before the stock dominance).",
        "",
        "| seed | old: answer | old: states | new: answer | new: states | new: s | "
        "new: M states/s | new: unique |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summ: dict = {"label": label, "run": run_dir.name, "seeds": {}}
    for seed in sorted(new):
        r = new[seed]
        o = old.get(seed, {})
        rate = r["states"] / max(r["seconds"], 1e-9) / 1e6
        lines.append(
            f"| {seed} | {o.get('status', '-')} ({o.get('seconds', 0):.0f} s) | "
            f"{o.get('states', 0):,} | {r['status']} | {r['states']:,} | {r['seconds']:.1f} | "
            f"{rate:.2f} | {r['unique_states']:,} |"
        )
        summ["seeds"][seed] = {"old": o, "new": r}
    dec = [s for s, r in new.items() if r["status"] in DECIDED]
    summ["decided"] = sorted(dec)
    summ["undecided"] = sorted(s for s in new if s not in dec)
    lines += [
        "",
        f"Decided in the new run: {len(dec)} of {len(new)} "
        f"({', '.join(map(str, sorted(dec))) or 'none'}).",
    ]
    return "\n".join(lines) + "\n", summ


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    stamp = a.run_dir.name.removeprefix("box_run_").split("_")[0]
    md, summ = report(a.run_dir, a.label or stamp)
    out = HERE / "results" / f"klondike_undecided_{stamp}"
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps(summ, indent=1) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
