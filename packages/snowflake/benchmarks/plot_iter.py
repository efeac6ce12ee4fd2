"""Plot ``iter_overhead.json`` results: one stacked bar per case (where a PPO iteration's time
goes) against its pure-stepping baseline and the +25 % line of the criterion. With the
overlapped worker-process rollout, "done + bookkeeping" runs during the physics, so the bars
of those cases are longer than the iteration itself by about that part.

    python packages/snowflake/benchmarks/plot_iter.py A/iter_overhead.json B/... --out it.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PARTS = (
    ("env wait", ("env",)),
    ("normalise", ("normalize",)),
    ("policy", ("policy", "action_out")),
    ("done + bookkeeping", ("done", "bookkeeping")),
    ("GAE", ("gae",)),
    ("update", ()),  # update_s
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="iter_overhead.json files")
    p.add_argument("--out", default="iter_overhead.png")
    a = p.parse_args()
    rows = []
    for f in a.runs:
        res = json.loads(Path(f).read_text())
        for key, r in res["cases"].items():
            if "error" not in r:
                rows.append((f"{res['date_utc'][5:]} {key}", r))
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(rows) + 1.5))
    colors = plt.cm.tab10.colors
    labels: set[str] = set()
    for i, (_label, r) in enumerate(rows):
        left = 0.0
        ph = r["phases_s"]
        for j, (name, keys) in enumerate(PARTS):
            w = r["update_s"] if name == "update" else sum(ph.get(k, 0.0) for k in keys)
            ax.barh(i, w, left=left, color=colors[j], label=name if i == 0 else None)
            left += w
        rest = r["iteration_s"] - left  # pipe messages, unclocked stores, loop overhead
        if rest > 0:
            ax.barh(
                i, rest, left=left, color="0.85", label="other" if "other" not in labels else None
            )
            labels.add("other")
            left += rest
        paired = sorted(r.get("pure_stepping_paired_s") or [])
        # the criterion's line: +25 % over the paired stepping where measured, else the mean
        ref = paired[(len(paired) - 1) // 2] if paired else r["pure_stepping_s"]
        pure = r["pure_stepping_s"]
        ax.plot(
            [pure, pure],
            [i - 0.4, i + 0.4],
            color="k",
            lw=2,
            label="pure stepping (before/after mean)" if i == 0 else None,
        )
        ax.plot(
            [1.25 * ref] * 2,
            [i - 0.4, i + 0.4],
            color="r",
            ls="--",
            lw=1.5,
            label="+25 % (over paired if measured)" if i == 0 else None,
        )
        txt = f"{r['overhead_frac']:+.0%}"
        if paired:  # the trainer's own envs, right after each iteration (median)
            med = paired[(len(paired) - 1) // 2]
            ax.plot(
                [med, med],
                [i - 0.4, i + 0.4],
                color="0.5",
                lw=2,
                label="paired stepping" if "paired" not in labels else None,
            )
            labels.add("paired")
            txt += f" (paired {r['overhead_paired_frac']:+.0%})"
        ax.text(left + 0.01, i, txt, va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [lbl for lbl, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per PPO iteration (Centipede-20, 2048 steps, 10 epochs of 8 x 256)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("PPO iteration vs pure stepping, H200 box, 16 cores")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(a.out)


if __name__ == "__main__":
    main()
