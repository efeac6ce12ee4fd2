"""Merge per-run divergence metrics of Centipede-20 runs (one or more rounds) into the final table.

The paper's effect, cheap form: over 300k env steps on Centipede-20, 3 seeds, the mean per
update of approx-KL and of the clip fraction of ``nervenet`` should be >= 1.5x those of ``mlp``,
and ``snowflake``'s <= 1.1x. Inputs are ``kl_metrics.csv`` files written by ``kl_runs.py`` (one
row per PPO update and run, column ``run`` = ``Centipede-20_<policy>_s<seed>``); a run found in
several files keeps the copy with the most updates. Per run: mean of each metric over its
updates; per policy: mean over seeds; ratios to ``mlp`` for the seed means and seed by seed
(same seed), over all updates and over the updates every run reached (equal progress).

    python packages/snowflake/benchmarks/kl_merge.py A/kl_metrics.csv B/kl_metrics.csv --out DIR
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

POLICIES = ("mlp", "nervenet", "snowflake")
METRICS = ("approx_kl", "clip_frac", "kl_exact", "kl_update", "clip_frac_update")
TARGET = {"nervenet": ">= 1.5", "snowflake": "<= 1.1"}


def read_metrics(paths: list[str | Path]) -> dict[str, dict[str, np.ndarray]]:
    """``{run: {column: values}}`` from ``kl_metrics.csv`` files (longest copy of each run)."""
    runs: dict[str, dict[str, np.ndarray]] = {}
    for p in paths:
        rows: dict[str, list[dict]] = defaultdict(list)
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                rows[r["run"]].append(r)
        for name, rs in rows.items():
            cols = {
                k: np.array([float(r[k]) if r.get(k) not in ("", None) else np.nan for r in rs])
                for k in rs[0]
                if k != "run"
            }
            if name not in runs or len(rs) > len(runs[name]["global_step"]):
                runs[name] = cols
    return runs


def _split(name: str) -> tuple[str, str, int]:
    env, pol, seed = name.rsplit("_", 2)
    return env, pol, int(seed[1:])


def summarize(runs: dict[str, dict[str, np.ndarray]], env: str = "Centipede-20") -> dict:
    """Per policy and seed: updates, steps, mean of each metric (all updates and the first
    ``k_common``); per policy: seed means and ratios to ``mlp`` (of seed means, and per seed)."""
    sel = {_split(k)[1:]: c for k, c in runs.items() if _split(k)[0] == env}
    k_common = min((len(c["global_step"]) for c in sel.values()), default=0)
    out: dict = {"env": env, "k_common": k_common, "policies": {}}
    for pol in POLICIES:
        seeds = sorted(s for p, s in sel if p == pol)
        if not seeds:
            continue
        r: dict = {"seeds": seeds, "updates": [], "steps": [], "per_seed": {}}
        for s in seeds:
            c = sel[(pol, s)]
            r["updates"].append(len(c["global_step"]))
            r["steps"].append(int(c["global_step"][-1]))
            ps = {}
            for m in METRICS:
                if m in c:
                    x = c[m][np.isfinite(c[m])]
                    xk = c[m][:k_common][np.isfinite(c[m][:k_common])]
                    ps[m] = float(x.mean()) if x.size else float("nan")
                    ps[f"{m}_first_k"] = float(xk.mean()) if xk.size else float("nan")
            r["per_seed"][s] = ps
        for m in METRICS:
            for suf in ("", "_first_k"):
                vals = [r["per_seed"][s].get(m + suf, np.nan) for s in seeds]
                r[m + suf] = float(np.mean(vals))
        out["policies"][pol] = r
    pols = out["policies"]
    if "mlp" in pols:
        base = pols["mlp"]
        for r in pols.values():
            for m in METRICS:
                for suf in ("", "_first_k"):
                    r[f"{m}{suf}_over_mlp"] = r[m + suf] / base[m + suf]
                    r[f"{m}{suf}_over_mlp_per_seed"] = {
                        s: r["per_seed"][s].get(m + suf, np.nan)
                        / base["per_seed"][s].get(m + suf, np.nan)
                        for s in r["seeds"]
                        if s in base["per_seed"]
                    }
    return out


def verdict(summary: dict) -> dict[str, str]:
    """The criterion per policy on approx-KL and clip fraction (all updates, seed means)."""
    pols, res = summary["policies"], {}
    for pol, tgt in TARGET.items():
        if pol not in pols or "mlp" not in pols:
            continue
        ra, rc = pols[pol]["approx_kl_over_mlp"], pols[pol]["clip_frac_over_mlp"]
        ok = (ra >= 1.5 and rc >= 1.5) if pol == "nervenet" else (ra <= 1.1 and rc <= 1.1)
        res[pol] = f"approx-KL {ra:.2f}x, clip fraction {rc:.2f}x mlp (target {tgt}x): " + (
            "met" if ok else "not met"
        )
    return res


def markdown(summary: dict, note: str = "") -> str:
    """The final table: per policy the seed means, ratios to ``mlp`` and per-seed values."""
    pols = summary["policies"]
    if not pols:
        return "No Centipede-20 runs found.\n"
    lines = [f"# Policy divergence on {summary['env']}", ""]
    if note:
        lines += [note, ""]
    lines += [
        "| policy | seeds | updates | steps (min) | approx-KL | × mlp | clip fraction | × mlp "
        "| closed-form KL | × mlp | kl_update | × mlp |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for pol, r in pols.items():
        cells = " | ".join(
            f"{r[m]:.4g} | {r.get(f'{m}_over_mlp', nan):.2f}"
            for m in ("approx_kl", "clip_frac", "kl_exact", "kl_update")
        )
        lines.append(f"| {pol} | {r['seeds']} | {r['updates']} | {min(r['steps'])} | {cells} |")
    lines += ["", "Per seed (mean per update over the run; ratio to the same seed's mlp):", ""]
    lines += ["| policy | seed | approx-KL | × mlp | clip fraction | × mlp |"]
    lines += ["|---|---|---|---|---|---|"]
    for pol, r in pols.items():
        for s in r["seeds"]:
            ps = r["per_seed"][s]
            ra = r.get("approx_kl_over_mlp_per_seed", {}).get(s, nan)
            rc = r.get("clip_frac_over_mlp_per_seed", {}).get(s, nan)
            lines.append(
                f"| {pol} | {s} | {ps['approx_kl']:.4g} | {ra:.2f} | {ps['clip_frac']:.3f} | "
                f"{rc:.2f} |"
            )
    k = summary["k_common"]
    lines += ["", f"Over the first {k} updates of every run (equal progress), × mlp:", ""]
    for pol, r in pols.items():
        lines.append(
            f"- {pol}: approx-KL {r.get('approx_kl_first_k_over_mlp', nan):.2f}, clip fraction "
            f"{r.get('clip_frac_first_k_over_mlp', nan):.2f}, closed-form KL "
            f"{r.get('kl_exact_first_k_over_mlp', nan):.2f}"
        )
    lines += ["", "Criterion (all updates, seed means):", ""]
    lines += [f"- {p}: {v}" for p, v in verdict(summary).items()]
    return "\n".join(lines) + "\n"


WINDOWS = (
    ("first 2 updates", 0, 4097),
    ("4-20k", 4097, 20481),
    ("20-100k", 20481, 100001),
    ("100-200k", 100001, 200001),
    ("200-300k", 200001, 10**9),
    ("whole run", 0, 10**9),
)


def windows(runs: dict[str, dict[str, np.ndarray]], env: str = "Centipede-20") -> list[str]:
    """Markdown rows: per window of env steps, ``nervenet`` / ``snowflake`` over ``mlp`` of the
    per-update means (each run's mean over its updates in the window, then over seeds)."""
    ms = ("kl_exact", "kl_update", "approx_kl", "clip_frac")

    def mean(pol: str, m: str, lo: int, hi: int) -> float:
        vals = []
        for name, c in runs.items():
            e, p, _ = _split(name)
            if e == env and p == pol and m in c:
                sel = (c["global_step"] >= lo) & (c["global_step"] < hi)
                if sel.any():
                    vals.append(np.nanmean(c[m][sel]))
        return float(np.mean(vals)) if vals else float("nan")

    lines = [
        "| window | " + " | ".join(f"{m} nervenet / snowflake" for m in ms) + " |",
        "|---|" + "---|" * len(ms),
    ]
    for label, lo, hi in WINDOWS:
        cells = []
        for m in ms:
            b = mean("mlp", m, lo, hi)
            cells.append(
                f"{mean('nervenet', m, lo, hi) / b:.2f} / {mean('snowflake', m, lo, hi) / b:.2f}"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def timing(runs: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Markdown rows: per run, median seconds per PPO iteration (updates after the first) of
    the rollout, its ``envs.step`` part, its policy calls and the update, and env steps/s."""
    lines = [
        "| run | updates | iteration s | rollout s | env.step s | policy s | update s | steps/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in sorted(runs.items()):
        sl = slice(1, None) if len(c["global_step"]) > 1 else slice(None)

        def med(k: str, c=c, sl=sl) -> float:
            return float(np.nanmedian(c[k][sl])) if k in c else float("nan")

        it = med("rollout_s") + med("update_s")
        lines.append(
            f"| {name} | {len(c['global_step'])} | {it:.2f} | {med('rollout_s'):.2f} | "
            f"{med('rollout_env_s'):.2f} | {med('time/policy'):.3f} | {med('update_s'):.3f} | "
            f"{med('sps'):.0f} |"
        )
    return lines


def plot(runs: dict[str, dict[str, np.ndarray]], path: Path, env: str = "Centipede-20") -> None:
    """approx-KL, clip fraction and closed-form KL per update against env steps, all runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = ("approx_kl", "clip_frac", "kl_exact", "ep_return_mean")
    fig, axes = plt.subplots(1, len(ms), figsize=(4.3 * len(ms), 3.6))
    colors = {"mlp": "C0", "nervenet": "C3", "snowflake": "C2"}
    for name, c in sorted(runs.items()):
        e, pol, seed = _split(name)
        if e != env:
            continue
        for ax, m in zip(axes, ms):
            if m in c:
                lab = pol if seed == 0 else None
                x = c["global_step"] / 1e3
                ax.plot(x, c[m], color=colors.get(pol, "k"), alpha=0.7, label=lab)
    for ax, m in zip(axes, ms):
        ax.set_title(f"{env}: {m}", fontsize=9)
        ax.set_xlabel("env steps (thousands)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv", nargs="+", help="kl_metrics.csv files (rounds)")
    p.add_argument("--out", default=".", help="folder for kl_final.md/.json/.png")
    p.add_argument("--note", default="", help="a line under the title (machine, date, settings)")
    a = p.parse_args()
    runs = read_metrics(a.csv)
    s = summarize(runs)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kl_final.json").write_text(json.dumps(s, indent=2, default=float))
    text = markdown(s, a.note)
    text += "\nRatio to mlp by window of env steps:\n\n" + "\n".join(windows(runs)) + "\n"
    text += "\nPer run, median per PPO iteration:\n\n" + "\n".join(timing(runs)) + "\n"
    (out / "kl_final.md").write_text(text)
    plot(runs, out / "kl_final.png")
    print(text)


if __name__ == "__main__":
    main()
