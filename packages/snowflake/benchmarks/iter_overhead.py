"""PPO iteration against pure stepping, for a plan of configurations (GPU box, 16 cores).

Each case is :func:`gpu_bench.ppo_iteration`: Centipede-20, 16 envs, 2048 transitions, 10 epochs
of minibatch 256, the update on ``--device`` (CUDA graphs), the GNN's rollout policy calls on the
same GPU and the MLP's on the CPU; of ``--iters`` iterations, the one of median duration after
the first is reported. Pure stepping is the
same vector env with uniform random actions, measured twice: before the iterations on a fresh
vector env of the same kind (16 envs, 16 workers), and after them on the trainer's own vector
env (all groups stepped together); the baseline is the mean of the two (stepping rates drift by
±10 % within a run). Overhead = iteration / pure stepping − 1.

Cases (``--plan``, comma-separated ``policy:vector:pipeline[:compile][:streams]``), e.g.
``snowflake:thread:1`` (the configuration of the earlier runs), ``snowflake:process:2`` (worker
processes in two groups, one group's policy call overlapping the other's physics),
``snowflake:process:2:compile`` (the same with the compiled minibatch forward + loss),
``…:streams`` (the critic's half of each update step on a second CUDA stream), ``…:sync``
(worker processes without the overlapped bookkeeping: the loop of the runs before 08:30 UTC,
2026-11-30), ``…:pageable`` (the GPU rollout policy's copies from pageable memory, as before
09:15 UTC), ``…:envsN`` / ``…:procsN`` (N envs, N worker processes; default 16 envs, one worker
per core and env). Overhead = iteration / pure stepping − 1, pure stepping as the mean of the
fresh env before and the trainer's env after; *paired*: the median over iterations of iteration
/ the trainer's own 2048 random-action steps timed right after it (see ``ppo_iteration``).
Results are written after every case (``--json``, ``--md``); a case that would end after the
budget is skipped.

    python packages/snowflake/benchmarks/iter_overhead.py --budget 150 --json it.json --md it.md
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from gpu_bench import ppo_iteration

DEFAULT_PLAN = (
    "snowflake:process:2:streams,mlp:process:2,snowflake:process:2,snowflake:process:1,"
    "snowflake:thread:1,mlp:process:1,mlp:thread:1,snowflake:process:2:compile:streams"
)


def _med(xs) -> float:
    return float(sorted(xs)[(len(xs) - 1) // 2]) if xs else float("nan")


def render(res: dict) -> str:
    lines = [
        f"# PPO iteration vs pure stepping, {res['date_utc']} UTC, {res['cores']} cores, "
        f"{res.get('gpu', 'no GPU')}",
        "",
        "Centipede-20, 2048 steps (16 envs unless the case says envsN), 10 epochs x 8 "
        "minibatches of 256; the iteration of "
        "median duration after the first.",
        "",
        "| case | iteration s | pure stepping s (before / after) | overhead | paired stepping s "
        "| paired overhead | rollout s | env.step s | normalise | policy | done | GAE | update s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in res["cases"].items():
        if "error" in r:
            lines.append(f"| {key} | failed: {r['error'][:80]} |")
            continue
        ph = r.get("phases_s", {})
        lines.append(
            f"| {key} | {r['iteration_s']:.3f} | {r['pure_stepping_s']:.3f} "
            f"({r['pure_stepping_before_s']:.3f} / {r['pure_stepping_after_s']:.3f}) | "
            f"**{r['overhead_frac']:+.1%}** | {_med(r.get('pure_stepping_paired_s')):.3f} | "
            f"**{r.get('overhead_paired_frac', float('nan')):+.1%}** | "
            f"{r['rollout_s']:.3f} | {r['rollout_env_s']:.3f} | "
            f"{ph.get('normalize', float('nan')):.3f} | {ph.get('policy', float('nan')):.3f} | "
            f"{ph.get('done', float('nan')):.3f} | {ph.get('gae', float('nan')):.3f} | "
            f"{r['update_s']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", default=DEFAULT_PLAN)
    p.add_argument("--budget", type=float, default=150.0, help="wall seconds for all cases")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CPU test of the script)")
    p.add_argument("--iters", type=int, default=4, help="iterations per case (first not counted)")
    p.add_argument("--json", default="iter_overhead.json")
    p.add_argument("--md", default="")
    a = p.parse_args()
    import torch

    t0 = time.time()
    deadline = t0 + a.budget
    dev = a.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    res: dict = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "cores": cores,
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [],
        "device": dev,
        "torch": torch.__version__,
        "cases": {},
    }
    if dev == "cuda":
        res["gpu"] = torch.cuda.get_device_name()
    for case in a.plan.split(","):
        pol, vec, pipe, *rest = case.split(":")
        comp, streams, sync = "compile" in rest, "streams" in rest, "sync" in rest
        pinned = "pageable" not in rest
        n_env = next((int(x[4:]) for x in rest if x.startswith("envs")), 16)
        workers = next((int(x[5:]) for x in rest if x.startswith("procs")), 0)
        need = (60.0 if comp else 25.0) if not a.smoke else 3.0
        if time.time() + need > deadline:
            print(f"PPO iteration {case}: skipped (budget)", flush=True)
            res["cases"][case] = {"error": "skipped (budget)"}
            continue
        # GNN rollout policy on the GPU (one graph replay per step), the MLP's on the CPU
        roll = ("cpu" if pol == "mlp" else dev) if dev != "cpu" else ""
        try:
            r = ppo_iteration(
                pol,
                cores,
                a.smoke,
                deadline,
                dev,
                True,
                roll,
                None,
                int(pipe),
                vec,
                comp,
                streams,
                a.iters,
                not sync,
                pinned,
                n_env,
                workers,
            )
        except Exception as e:  # one failing case must not sink the others
            res["cases"][case] = {"error": repr(e)[:500]}
            print(f"PPO iteration {case}: FAILED {e!r}", flush=True)
            continue
        res["cases"][case] = r
        ph = r["phases_s"]
        print(
            f"PPO iteration {case}: {r['iteration_s']:.3f} s vs {r['pure_stepping_s']:.3f} s "
            f"stepping ({r['overhead_frac']:+.1%}; paired {r['overhead_paired_frac']:+.1%}); "
            f"rollout {r['rollout_s']:.3f} (env.step "
            f"{r['rollout_env_s']:.3f}, normalise {ph.get('normalize', 0):.3f}, policy "
            f"{ph.get('policy', 0):.3f}, done {ph.get('done', 0):.3f}), update "
            f"{r['update_s']:.3f} s; graphs {r['update_graph_used']}/{r['policy_graph_used']} "
            f"{r['graph_error'] or r['policy_graph_error']}",
            flush=True,
        )
        res["wall_s"] = time.time() - t0
        Path(a.json).write_text(json.dumps(res, indent=2, default=float))
        if a.md:
            Path(a.md).write_text(render(res))
    res["wall_s"] = time.time() - t0
    Path(a.json).write_text(json.dumps(res, indent=2, default=float))
    if a.md:
        Path(a.md).write_text(render(res))
    print(render(res), flush=True)


if __name__ == "__main__":
    main()
