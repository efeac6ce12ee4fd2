"""Where one rollout step's time goes besides the physics (GPU box): the per-step policy path of
a GPU rollout copy, piece by piece, and the GPU kernels of one captured policy call.

Builds the trainer of the fastest GNN case (Centipede-20, 16 envs, worker processes, compiled
and captured policy and update), runs ``--warm`` iterations, then times each piece of the
per-step path ``--reps`` times on the trainer's current observations (median, µs): numpy
normaliser update + normalisation, the host→device copy, the graph replay waited for (GPU
latency of one policy call), the packed device→host copy, sampling + clipping, the whole call
as the rollout makes it, host-to-host replay through pinned buffers, and the env step alone
(``step_async`` + ``step_wait`` of the worker processes, random actions). A ``torch.profiler``
trace of ``--reps`` replays gives the kernels per call and their summed GPU time. Writes
``--json``.

    python packages/snowflake/benchmarks/policy_path.py --json policy_path.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np


def _med_us(fn, reps: int) -> float:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return float(np.median(out) * 1e6)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policy", default="snowflake")
    p.add_argument("--smoke", action="store_true", help="CPU, tiny sizes (test of the script)")
    p.add_argument("--warm", type=int, default=2, help="PPO iterations before timing")
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--json", default="policy_path.json")
    a = p.parse_args()
    import torch

    import snowflake as sf

    cuda = torch.cuda.is_available() and not a.smoke
    torch.set_num_threads(1)  # the GNN's CPU forward (smoke only) next to the workers
    dev = "cuda" if cuda else "cpu"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n_env = 2 if a.smoke else 16
    cfg = sf.PPOConfig(
        env="Centipede-6" if a.smoke else "Centipede-20",
        policy=a.policy,
        num_envs=n_env,
        num_threads=min(cores, n_env),
        rollout_steps=64 if a.smoke else 2048,
        minibatch_size=32 if a.smoke else 256,
        epochs=1 if a.smoke else 10,
        total_steps=100 * 2048,
        device=dev,
        rollout_device=dev if cuda else "",
        vector="process",
        compile=cuda,
        split_streams=cuda,
    )
    tr = sf.Trainer(cfg)
    res: dict = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "cores": cores,
        "device": dev,
        "gpu": torch.cuda.get_device_name() if cuda else "",
        "torch": torch.__version__,
        "policy": a.policy,
        "num_envs": n_env,
    }
    try:
        for _ in range(a.warm):
            row = tr.step()
        res["last_iteration_phases_s"] = {k[5:]: v for k, v in row.items() if k.startswith("time/")}
        res["last_iteration_s"] = row["rollout_s"] + row["update_s"]
        agent = tr.roll_agent
        norm = copy.deepcopy(agent.normalizer)  # timing must not move the trainer's statistics
        raw = np.array(tr.next_obs, copy=True)
        graphed = tr._graphed_policy
        a_dim = len(tr.morph.act_node)
        low, high = tr.envs.single_action_space.low, tr.envs.single_action_space.high
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        obs = norm.update_normalize_np(raw)
        t = {"normalise_np": _med_us(lambda: norm.update_normalize_np(raw), a.reps)}
        o = obs.to(dev)
        t["h2d"] = _med_us(lambda: (obs.to(dev), sync()), a.reps)

        def forward():
            if graphed is not None:
                return graphed(o)
            with torch.inference_mode():
                mean, log_std = agent.actor(o)
                return mean, log_std, agent.value(o)

        t["forward_waited"] = _med_us(lambda: (forward(), sync()), a.reps)
        mean, log_std, val = forward()
        t["pack_d2h"] = _med_us(lambda: torch.cat([mean, log_std, val[:, None]], 1).cpu(), a.reps)
        out = torch.cat([mean, log_std, val[:, None]], 1).cpu()

        def sample():
            m, s = out[:, :a_dim], out[:, a_dim : 2 * a_dim].exp()
            act = m + s * torch.randn(m.shape, dtype=m.dtype)
            return np.clip(act.numpy().astype(np.float64), low, high)

        t["sample_clip"] = _med_us(sample, a.reps)

        def whole():
            x = norm.update_normalize_np(raw).to(dev)
            if graphed is not None:
                mm, ls, vv = graphed(x)
            else:
                with torch.inference_mode():
                    mm, ls = agent.actor(x)
                    vv = agent.value(x)
            pk = torch.cat([mm, ls, vv[:, None]], 1).cpu()
            m, s = pk[:, :a_dim], pk[:, a_dim : 2 * a_dim].exp()
            act = m + s * torch.randn(m.shape, dtype=m.dtype)
            return np.clip(act.numpy().astype(np.float64), low, high)

        t["whole_call"] = _med_us(whole, a.reps)
        if graphed is not None and hasattr(graphed, "to_host"):
            t["replay_pinned_to_host"] = _med_us(lambda: graphed.to_host(obs), a.reps)
        state = tr.envs.get_state()
        acts = np.random.default_rng(0).uniform(low, high, size=(n_env, low.size))
        t["env_step"] = _med_us(lambda: tr.envs.step(acts), min(a.reps, 128))
        tr.envs.set_state(state)
        res["median_us"] = t
        print("per-step path, median µs: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
        if cuda and graphed is not None:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
                for _ in range(20):
                    graphed(o)
                sync()
            kern = [
                e
                for e in prof.events()
                if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time > 0
            ]
            tot = sum(e.device_time for e in kern) / 20
            names: dict[str, list] = {}
            for e in kern:
                names.setdefault(e.name[:60], []).append(e.device_time)
            top = sorted(names.items(), key=lambda kv: -sum(kv[1]))[:8]
            res["replay_kernels_per_call"] = len(kern) / 20
            res["replay_kernel_us_per_call"] = tot
            res["replay_top_kernels"] = [
                {"name": k, "per_call": len(v) / 20, "us_per_call": sum(v) / 20} for k, v in top
            ]
            print(
                f"policy replay: {len(kern) / 20:.0f} kernels, {tot:.1f} µs of kernel time per "
                f"call; top: "
                + "; ".join(
                    f"{d['name']} x{d['per_call']:.0f} {d['us_per_call']:.1f}"
                    for d in res["replay_top_kernels"][:5]
                )
            )
    finally:
        tr.close()
    Path(a.json).write_text(json.dumps(res, indent=2, default=float))


if __name__ == "__main__":
    main()
