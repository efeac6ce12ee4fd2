"""Where the time of one PPO iteration goes, phase by phase, against pure stepping.

One :class:`snowflake.Trainer` iteration (rollout of ``--rollout-steps`` transitions on
``--num-envs`` envs (``--vector thread|process``, ``--pipeline`` groups), GAE, ``--epochs``
epochs of minibatch ``--minibatch``) is timed
with the trainer's own phase clocks (``Trainer.phase_s``, the ``time/*`` columns of
``metrics.csv``); the last of ``--iters`` iterations is reported (no one-time costs). Pure
stepping is the same vector env with random actions. Per phase: seconds, µs per vector step
(rollout phases) and the share of pure stepping it adds. ``--ops`` also counts the torch
operators of one rollout policy call and of one minibatch step (with ``torch.profiler``): on a
GPU each is at least one kernel launch, which is what bounds the small-batch maths there.

    python packages/snowflake/benchmarks/ppo_phases.py --policy snowflake --env Centipede-20
    python packages/snowflake/benchmarks/ppo_phases.py --device cuda --rollout-device cpu
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import snowflake as sf
from snowflake._bench import bench_env

ROLLOUT = ("normalize", "policy", "action_out", "env", "done", "bookkeeping")
AFTER = ("gae", "to_device", "update_prep", "update_steps", "update_diag", "sync_rollout_copy")


def count_ops(tr: sf.Trainer) -> dict[str, int]:
    """Torch operators (profiler events at the top level) of one rollout policy step and of one
    PPO minibatch step (forward, backward, clipping, both Adam steps) of ``tr``'s model."""
    from torch.profiler import ProfilerActivity, profile

    from snowflake._ppo import minibatch_step

    agent, roll = tr.agent, tr.roll_agent
    k, d = tr.cfg.num_envs, tr.morph.obs_dim
    obs = torch.zeros(k, d, device=tr.roll_device)
    fn = roll.rollout_fn() if tr.roll_device.type == "cpu" else None
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as p:
        if fn is not None:
            fn(obs)
        else:
            roll.dist(obs), roll.value(obs)
    n_roll = sum(1 for e in p.events() if e.cpu_parent is None)
    mb = tr.cfg.minibatch_size
    data = {
        "obs": torch.zeros(mb, d, device=tr.device),
        "actions": torch.zeros(mb, len(tr.morph.act_node), device=tr.device),
        "logp": torch.zeros(mb, device=tr.device),
        "advantages": torch.randn(mb, device=tr.device),
        "returns": torch.zeros(mb, device=tr.device),
    }
    pi = [p for g in tr.opt_pi.param_groups for p in g["params"]]
    v = [p for g in tr.opt_v.param_groups for p in g["params"]]
    state = {n: p.detach().clone() for n, p in agent.named_parameters()}
    idx = torch.arange(mb, device=tr.device)
    with profile(activities=[ProfilerActivity.CPU]) as p:
        minibatch_step(agent, tr.opt_pi, tr.opt_v, pi, v, idx, data, tr.cfg)
    n_mb = sum(1 for e in p.events() if e.cpu_parent is None)
    with torch.no_grad():  # leave the model as it was
        for n, q in agent.named_parameters():
            q.copy_(state[n])
    tr.opt_pi.zero_grad(set_to_none=True)
    tr.opt_v.zero_grad(set_to_none=True)
    return {"rollout_policy_ops": n_roll, "minibatch_step_ops": n_mb}


def measure(a: argparse.Namespace) -> dict:
    torch.set_num_threads(a.torch_threads)
    cfg = sf.PPOConfig(
        env=a.env,
        policy=a.policy,
        num_envs=a.num_envs,
        num_threads=a.threads,
        rollout_steps=a.rollout_steps,
        minibatch_size=a.minibatch,
        epochs=a.epochs,
        total_steps=100 * a.rollout_steps,
        device=a.device,
        rollout_device=a.rollout_device,
        seed=a.seed,
        pipeline=a.pipeline,
        vector=a.vector,
        compile=a.compile,
        split_streams=a.split_streams,
    )
    pure = bench_env(a.env, a.num_envs, a.vector, a.pure_seconds, a.threads)
    pure_s = cfg.rollout_steps / pure["steps_per_s"]
    tr = sf.Trainer(cfg)
    rows = [tr.step() for _ in range(a.iters)]
    ops = count_ops(tr) if a.ops else {}
    tr.close()
    row = rows[-1]
    t_len = cfg.rollout_steps // cfg.num_envs
    phases = {k: row[f"time/{k}"] for k in ROLLOUT + AFTER if f"time/{k}" in row}
    it = row["rollout_s"] + row["update_s"]
    return {
        "env": a.env,
        "policy": a.policy,
        "device": a.device,
        "rollout_device": a.rollout_device or a.device,
        "num_envs": a.num_envs,
        "threads": a.threads,
        "pipeline": a.pipeline,
        "vector": a.vector,
        "torch_threads_update": a.torch_threads,
        "rollout_steps": cfg.rollout_steps,
        "minibatch": cfg.minibatch_size,
        "epochs": cfg.epochs,
        "vector_steps": t_len,
        "pure_stepping_s": pure_s,
        "rollout_s": row["rollout_s"],
        "update_s": row["update_s"],
        "iteration_s": it,
        "overhead_frac": it / pure_s - 1.0,
        "phases_s": phases,
        "unaccounted_s": it - sum(phases.values()),
        **ops,
    }


def render(res: dict) -> str:
    pure, t_len = res["pure_stepping_s"], res["vector_steps"]
    lines = [
        f"{res['policy']} on {res['env']}, {res['num_envs']} envs / {res['threads']} threads, "
        f"update on {res['device']} ({res['torch_threads_update']} torch threads), rollout policy "
        f"on {res['rollout_device']}; {res['rollout_steps']} steps, {res['epochs']} epochs of "
        f"{res['minibatch']}; pipeline {res['pipeline']}, {res['vector']} envs",
        "",
        "| phase | s | µs per vector step | × pure stepping |",
        "|---|---|---|---|",
    ]
    for k, v in res["phases_s"].items():
        per = f"{v / t_len * 1e6:,.0f}" if k in ROLLOUT else "–"
        lines.append(f"| {k} | {v:.3f} | {per} | {v / pure:.3f} |")
    lines += [
        f"| *iteration* | {res['iteration_s']:.3f} | – | {res['iteration_s'] / pure:.3f} |",
        f"| *pure stepping* | {pure:.3f} | {pure / t_len * 1e6:,.0f} | 1.000 |",
        "",
        f"overhead over pure stepping: {res['overhead_frac']:+.1%}",
    ]
    if "minibatch_step_ops" in res:
        lines.append(
            f"torch operators: {res['rollout_policy_ops']} per rollout policy call, "
            f"{res['minibatch_step_ops']} per minibatch step"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Centipede-20")
    p.add_argument("--policy", default="snowflake", choices=("mlp", "nervenet", "snowflake"))
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--rollout-steps", type=int, default=2048)
    p.add_argument("--minibatch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rollout-device", default="")
    p.add_argument("--pipeline", type=int, default=1, help="env groups stepped in turn")
    p.add_argument("--vector", default="thread", choices=("thread", "process"))
    p.add_argument("--compile", action="store_true", help="PPOConfig(compile=True) (CUDA)")
    p.add_argument("--split-streams", action="store_true", help="PPOConfig(split_streams=True)")
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--pure-seconds", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ops", action="store_true", help="count torch operators per call")
    p.add_argument("--json", default="", help="also write the result here")
    a = p.parse_args()
    t0 = time.time()
    res = measure(a)
    res["wall_s"] = time.time() - t0
    res["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    print(render(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2, default=float)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
