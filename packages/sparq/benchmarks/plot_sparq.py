"""Plot SparQ speed-ups against dense attention from harness result files (PNG, headless).

Usage: ``python plot_sparq.py OUT.png RESULT.json [RESULT.json ...]`` with the
``sparq_decode_*.json`` / ``sparq_e2e_decode_*.json`` files of one or more runs. One bar per
benchmark point (speed-up = dense time / SparQ time), the acceptance targets as markers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {"K1": 4.0, "K2": 3.0, "K3": 2.5, "K4": 1 / 1.1, "E2E": 2.0, "E2E readback": 2.0}


def _label(r: dict) -> str:
    if r["case"] == "sparq_e2e_decode":
        return "E2E readback" if r.get("extra", {}).get("readback_every_step") else "E2E"
    return str(r.get("extra", {}).get("shape") or r["id"].split("name=")[-1].split(",")[0])


def main(out: str, paths: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for p in paths:
        run = json.loads(Path(p).read_text())
        dev = run["environment"].get("device_name") or run["settings"].get("device", "")
        for r in run["results"]:
            if r["status"] == "ok" and r.get("speedup"):
                rows.append((_label(r), r["speedup"], dev))
    if not rows:
        raise SystemExit("no ok results with a speed-up in the given files")
    fig, ax = plt.subplots(figsize=(1.2 * len(rows) + 2, 3.5))
    xs = range(len(rows))
    ax.bar(xs, [s for _, s, _ in rows], color="tab:blue", label="SparQ / dense (measured)")
    for x, (name, s, _) in zip(xs, rows):
        ax.text(x, s, f"{s:.2f}x", ha="center", va="bottom", fontsize=8)
        if name in TARGETS:
            ax.plot([x - 0.4, x + 0.4], [TARGETS[name]] * 2, "r--", lw=1)
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks(list(xs), [n for n, _, _ in rows])
    ax.set_ylabel("speed-up over dense (x)")
    ax.set_title(f"SparQ decode vs dense attention ({rows[0][2]}); red: target")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
