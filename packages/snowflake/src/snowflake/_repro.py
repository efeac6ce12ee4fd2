"""Paper-style experiment grids (Snowflake, Blake et al. 2021, Figs. 2/6 and the transfer table)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._report import markdown_table, plot_runs, read_run

POLICIES = ("mlp", "nervenet", "snowflake")


def _train_cmd(env: str, policy: str, seed: int, steps: int, out: Path, device: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snowflake.cli",
        "train",
        "--env",
        env,
        "--policy",
        policy,
        "--seed",
        str(seed),
        "--steps",
        str(steps),
        "--num-envs",
        "8",
        "--threads",
        "1",
        "--torch-threads",
        "1",
        "--device",
        device,
        "--out",
        str(out),
        "--quiet",
    ]


def scaling_summary(root: Path, envs: list[str], seeds: int) -> tuple[str, dict]:
    """Markdown + dict: return, mean approx-KL, clip fraction per (env, policy), ratios to MLP."""
    res: dict = {}
    for env in envs:
        for pol in POLICIES:
            finals, kls, fracs = [], [], []
            for s in range(seeds):
                _, c = read_run(root / f"{env}_{pol}_s{s}")
                r = c["ep_return_mean"]
                finals.append(float(np.nanmean(r[-max(1, len(r) // 10) :])))
                kls.append(float(np.mean(c["approx_kl"])))
                fracs.append(float(np.mean(c["clip_frac"])))
            res[f"{env}/{pol}"] = {
                "return": float(np.mean(finals)),
                "return_std": float(np.std(finals)),
                "approx_kl": float(np.mean(kls)),
                "clip_frac": float(np.mean(fracs)),
            }
    rows = []
    for env in envs:
        base = res[f"{env}/mlp"]
        for pol in POLICIES:
            r = res[f"{env}/{pol}"]
            rows.append(
                [
                    env,
                    pol,
                    r["return"],
                    r["return_std"],
                    r["approx_kl"],
                    r["clip_frac"],
                    r["approx_kl"] / max(base["approx_kl"], 1e-12),
                    r["clip_frac"] / max(base["clip_frac"], 1e-12),
                ]
            )
    md = markdown_table(
        [
            "env",
            "policy",
            "final return",
            "± std (seeds)",
            "mean approx-KL",
            "mean clip frac",
            "KL / MLP",
            "clip / MLP",
        ],
        rows,
    )
    return md, res


def repro(
    suite: str,
    out: Path,
    steps: int,
    seeds: int,
    jobs: int,
    envs: str,
    to: str,
    device: str,
    run_jobs: Callable[[list[list[str]], int], None],
) -> dict:
    """Run the ``scaling`` or ``transfer`` grid into ``out``; write ``report.md``, PNG, JSON."""
    from ._eval import transfer

    out.mkdir(parents=True, exist_ok=True)
    env_list = [
        e.strip() if not e.strip().isdigit() else f"Centipede-{e.strip()}" for e in envs.split(",")
    ]
    if suite == "transfer":
        env_list = env_list[:1]
    cmds = [
        _train_cmd(env, pol, s, steps, out / f"{env}_{pol}_s{s}", device)
        for env in env_list
        for pol in POLICIES
        for s in range(seeds)
    ]
    run_jobs(cmds, jobs)
    runs = [out / f"{env}_{pol}_s{s}" for env in env_list for pol in POLICIES for s in range(seeds)]
    plot_runs(runs, out / "curves.png")
    md, res = scaling_summary(out, env_list, seeds)
    report = [
        f"# snowflake repro: {suite}",
        "",
        f"{steps} steps per run, {seeds} seeds, policies {', '.join(POLICIES)}.",
        "",
        md,
        "",
        "![curves](curves.png)",
        "",
    ]
    if suite == "transfer":
        targets = [env_list[0]] + [f"Centipede-{t.strip()}" for t in to.split(",") if t.strip()]
        table: dict[str, dict[str, list[float]]] = {}
        for pol in POLICIES:
            for s in range(seeds):
                for row in transfer(
                    out / f"{env_list[0]}_{pol}_s{s}" / "final.pt", targets, episodes=10
                ):
                    table.setdefault(pol, {}).setdefault(row["env"], []).append(row["return_mean"])
        rows = [[pol] + [float(np.mean(table[pol][t])) for t in targets] for pol in POLICIES]
        report += [
            "## Zero-shot transfer (deterministic, 10 episodes, mean over seeds)",
            "",
            markdown_table(["policy", *targets], rows),
            "",
        ]
        res["transfer"] = {
            pol: {t: float(np.mean(v)) for t, v in d.items()} for pol, d in table.items()
        }
    (out / "report.md").write_text("\n".join(report))
    (out / "summary.json").write_text(json.dumps(res, indent=2))
    print("\n".join(report))
    return res
