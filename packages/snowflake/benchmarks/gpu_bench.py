"""GPU-machine benchmark for snowflake (16 cores + one GPU), driven by gpu_run.sh.

Part 1: env throughput (single process, threaded batched stepper, gymnasium AsyncVectorEnv) and
the overhead of a full PPO iteration over pure stepping. Part 2 (reduced): the paper's
policy-divergence signature on Centipede-20 (mean approx-KL / clip fraction per update for mlp,
nervenet, snowflake; several runs in parallel processes, wall-clock capped) and a reduced
Centipede-6 → 8/10/12/20 zero-shot transfer. Writes JSON, markdown and PNGs to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def correctness() -> dict:
    import gymnasium as gym
    import torch

    import snowflake as sf

    out = {}
    for n, (d, a) in {6: (139, 16), 20: (433, 58)}.items():
        e = gym.make(f"Centipede-{n}-v0")
        assert e.observation_space.shape == (d,), (n, e.observation_space)
        assert e.action_space.shape == (a,), (n, e.action_space)
        e.reset(seed=0)
        for _ in range(50):
            e.step(np.zeros(a, np.float32))
        assert np.abs(e.unwrapped.data.cfrc_ext).sum() > 0, "cfrc_ext is zero"
        e.close()
    # threaded stepper == one env stepped alone (same seed, same actions)
    v = sf.make_vector_env("Centipede-20", 4, "thread", 4)
    s = gym.make("Centipede-20-v0", disable_env_checker=True)
    ov, _ = v.reset(seed=7)
    os_, _ = s.reset(seed=7)
    rng = np.random.default_rng(0)
    max_diff = float(np.abs(ov[0] - os_).max())
    for _ in range(20):
        act = rng.uniform(-1, 1, (4, 58))
        ov, rv, tv, *_ = v.step(act)
        os_, rs, ts, *_ = s.step(act[0])
        if tv[0] or ts:
            break
        max_diff = max(max_diff, float(np.abs(ov[0] - os_).max()), abs(float(rv[0] - rs)))
    v.close()
    assert max_diff == 0.0, f"threaded stepper differs from a single env by {max_diff}"
    out["threaded_equals_single"] = True
    agent, _, _morph = sf.build_agent("Centipede-6", "snowflake")
    agent.bind(
        sf.build_morphology(__import__("mujoco").MjModel.from_xml_string(sf.centipede_xml(100)))
    )
    with torch.no_grad():
        m, _ = agent.actor(torch.zeros(2, sf.obs_dim(100)))
    assert m.shape == (2, 298)
    out["gnn_c6_runs_on_c100"] = True
    return out


def throughput(sec: float, cores: int) -> dict:
    from snowflake._bench import bench_env

    res = {}
    plan = [
        ("single_c20", "Centipede-20", "single", 1, None),
        ("single_c6", "Centipede-6", "single", 1, None),
        ("single_ant", "Ant-v5", "single", 1, None),
        (f"thread{cores}_c20_x{cores}", "Centipede-20", "thread", cores, cores),
        (f"thread{cores}_c20_x{4 * cores}", "Centipede-20", "thread", 4 * cores, cores),
        (f"thread{cores}_c6_x{4 * cores}", "Centipede-6", "thread", 4 * cores, cores),
        (f"thread{cores}_ant_x{4 * cores}", "Ant-v5", "thread", 4 * cores, cores),
        (f"async{cores}_c20", "Centipede-20", "async", cores, None),
        (f"async{cores}_ant", "Ant-v5", "async", cores, None),
        (f"async{cores}_c6", "Centipede-6", "async", cores, None),
    ]
    for key, env, kind, n, threads in plan:
        r = bench_env(env, n, kind, sec, threads)
        res[key] = {"env": env, "kind": kind, "num_envs": n, **r}
        log(f"throughput {key}: {r['steps_per_s']:.0f} steps/s")
    return res


def ppo_overhead(cores: int, device: str, smoke: bool) -> dict:
    import torch

    import snowflake as sf
    from snowflake._bench import bench_env

    n_env = cores
    cfg = sf.PPOConfig(
        env="Centipede-20",
        policy="snowflake",
        num_envs=n_env,
        num_threads=cores,
        rollout_steps=2048 if not smoke else 64,
        minibatch_size=256 if not smoke else 32,
        epochs=10 if not smoke else 1,
        total_steps=100 * 2048,
        device=device,
    )
    tr = sf.Trainer(cfg)
    tr.step()  # warm-up (CUDA init, first allocations)
    rows = [tr.step() for _ in range(2 if not smoke else 1)]
    tr.close()
    env_only = bench_env("Centipede-20", n_env, "thread", 3.0 if not smoke else 0.5, cores)[
        "steps_per_s"
    ]
    it = float(np.mean([r["rollout_s"] + r["update_s"] for r in rows]))
    pure = cfg.rollout_steps / env_only
    torch.cuda.empty_cache() if device == "cuda" else None
    return {
        "iteration_s": it,
        "rollout_s": float(np.mean([r["rollout_s"] for r in rows])),
        "update_s": float(np.mean([r["update_s"] for r in rows])),
        "pure_stepping_s": pure,
        "overhead_frac": it / pure - 1.0,
        "num_envs": n_env,
        "rollout_steps": cfg.rollout_steps,
        "epochs": cfg.epochs,
    }


def worker(a: argparse.Namespace) -> None:
    """One training process: train until the deadline, then optionally run zero-shot transfer."""
    import torch

    import snowflake as sf

    torch.set_num_threads(1)
    kw = {} if not a.smoke else {"rollout_steps": 64, "minibatch_size": 32, "epochs": 2}
    cfg = sf.PPOConfig(
        env=a.env,
        policy=a.policy,
        seed=a.seed,
        num_envs=a.num_envs,
        num_threads=a.threads,
        total_steps=a.steps,
        device=a.device,
        checkpoint_every=10**9,
        **kw,
    )
    out = Path(a.run_dir)
    tr = sf.Trainer(cfg, out)
    tr._write_config()
    t_end = time.time() + a.seconds
    tr.wall0 = time.perf_counter()
    while tr.update_idx < tr.num_updates and time.time() < t_end:
        tr._log(tr.step())
    tr.save(out / "final.pt")
    tr.close()
    res = {"steps": tr.global_step, "updates": tr.update_idx}
    if a.transfer:
        agent = sf.load_policy(out / "final.pt")
        agent.to("cpu")
        res["transfer"] = {}
        for t in a.transfer.split(","):
            r = sf.evaluate(
                sf.load_policy(out / "final.pt", t),
                t,
                a.episodes,
                seed=123,
                num_threads=a.threads,
                max_steps=a.max_eval_steps,
            )
            res["transfer"][t] = r["return_mean"]
    (out / "result.json").write_text(json.dumps(res))


def launch(
    args, env, policy, seed, seconds, run_dir, threads, num_envs, transfer=""
) -> subprocess.Popen:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--env",
        env,
        "--policy",
        policy,
        "--seed",
        str(seed),
        "--seconds",
        str(seconds),
        "--run-dir",
        str(run_dir),
        "--threads",
        str(threads),
        "--num-envs",
        str(num_envs),
        "--steps",
        str(args.steps),
        "--device",
        args.device,
        "--episodes",
        str(args.episodes),
        "--transfer",
        transfer,
    ] + (["--smoke"] if args.smoke else [])
    return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})


def summarise_runs(root: Path, policies, seeds, env) -> dict:
    from snowflake._report import read_run

    out = {}
    for pol in policies:
        kls, fracs, rets, steps = [], [], [], []
        for s in range(seeds):
            _, c = read_run(root / f"{env}_{pol}_s{s}")
            kls.append(float(np.mean(c["approx_kl"])))
            fracs.append(float(np.mean(c["clip_frac"])))
            rets.append(float(np.nanmean(c["ep_return_mean"][-3:])))
            steps.append(int(c["global_step"][-1]))
        out[pol] = {
            "approx_kl": float(np.mean(kls)),
            "clip_frac": float(np.mean(fracs)),
            "approx_kl_seeds": kls,
            "clip_frac_seeds": fracs,
            "return_last": float(np.mean(rets)),
            "steps_per_run": steps,
        }
    for pol in policies:
        out[pol]["kl_over_mlp"] = out[pol]["approx_kl"] / max(out["mlp"]["approx_kl"], 1e-12)
        out[pol]["clip_over_mlp"] = out[pol]["clip_frac"] / max(out["mlp"]["clip_frac"], 1e-12)
    return out


def plot(root: Path, policies, seeds, env, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snowflake._report import read_run

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for pol in policies:
        for s in range(seeds):
            _, c = read_run(root / f"{env}_{pol}_s{s}")
            kw = {
                "color": {"mlp": "C0", "nervenet": "C3", "snowflake": "C2"}[pol],
                "alpha": 0.8,
                "label": pol if s == 0 else None,
            }
            axes[0].plot(c["global_step"], c["approx_kl"], **kw)
            axes[1].plot(c["global_step"], c["clip_frac"], **kw)
            axes[2].plot(c["global_step"], c["ep_return_mean"], **kw)
    for ax, t in zip(axes, ["approx-KL per update", "clip fraction per update", "episode return"]):
        ax.set_title(f"{env}: {t}", fontsize=9)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/snowflake_gpu"))
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--worker", action="store_true")
    p.add_argument("--env", default="Centipede-20")
    p.add_argument("--policy", default="snowflake")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=100.0)
    p.add_argument("--run-dir", default="")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--device", default="")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--transfer", default="")
    p.add_argument("--max-eval-steps", type=int, default=500)
    a = p.parse_args()
    import torch

    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.worker:
        worker(a)
        return
    t0 = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    import gymnasium
    import mujoco

    res = {
        "date": time.strftime("%Y-%m-%d"),
        "cores": cores,
        "gpu": gpu,
        "device": a.device,
        "smoke": a.smoke,
        "versions": {
            "mujoco": mujoco.__version__,
            "gymnasium": gymnasium.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
    }
    log(f"correctness checks ({cores} cores, gpu={gpu})")
    res["checks"] = correctness()
    sec = 0.5 if a.smoke else 4.0
    res["throughput"] = throughput(sec, cores)
    log("PPO iteration overhead")
    res["ppo_iteration"] = ppo_overhead(cores, a.device, a.smoke)
    log(f"PPO overhead: {res['ppo_iteration']['overhead_frac']:.0%} over pure stepping")
    # ---- reduced paper effect + transfer, all in parallel processes, wall-clock capped
    policies, seeds = ("mlp", "nervenet", "snowflake"), 2
    runs = Path("/tmp/snowflake_gpu_runs")
    budget = 12.0 if a.smoke else max(30.0, 170.0 - (time.time() - t0))
    train_s = budget * 0.7
    threads = 1 if a.smoke else 2
    procs = [
        launch(a, "Centipede-20", pol, s, train_s, runs / f"Centipede-20_{pol}_s{s}", threads, 8)
        for pol in policies
        for s in range(seeds)
    ]
    targets = "Centipede-6,Centipede-8,Centipede-10,Centipede-12,Centipede-20"
    procs += [
        launch(a, "Centipede-6", pol, 0, train_s, runs / f"Centipede-6_{pol}_s0", 1, 8, targets)
        for pol in policies
    ]
    log(f"launched {len(procs)} training processes for {train_s:.0f} s each")
    (out / "snowflake_gpu.json").write_text(json.dumps(res, indent=2))  # partial results first
    hard_end = t0 + (40.0 if a.smoke else 200.0) + (600.0 if a.smoke else 0.0)
    codes = []
    for pr in procs:
        try:
            codes.append(pr.wait(timeout=max(1.0, hard_end - time.time())))
        except subprocess.TimeoutExpired:
            pr.kill()  # a straggler (e.g. a long transfer evaluation) must not sink the report
            codes.append("killed")
    res["worker_exit_codes"] = codes
    try:
        res["paper_effect"] = summarise_runs(runs, policies, seeds, "Centipede-20")
        plot(runs, policies, seeds, "Centipede-20", out / "snowflake_gpu_c20_kl.png")
    except Exception as e:  # report what we have
        res["paper_effect_error"] = repr(e)
    res["transfer"] = {}
    for pol in policies:
        f = runs / f"Centipede-6_{pol}_s0" / "result.json"
        if f.exists():
            res["transfer"][pol] = json.loads(f.read_text())
    res["wall_s"] = time.time() - t0
    (out / "snowflake_gpu.json").write_text(json.dumps(res, indent=2))
    md = report_md(res, train_s)
    (out / "snowflake_gpu.md").write_text(md)
    print(md)


def report_md(res: dict, train_s: float) -> str:
    th = res["throughput"]
    single = th["single_c20"]["steps_per_s"]
    lines = [
        f"# snowflake on {res['gpu']} ({res['cores']} cores), {res['date']}",
        "",
        "## Env throughput (steps/s, random actions, RK4)",
        "",
        "| case | env | backend | envs | steps/s | × single |",
        "|---|---|---|---|---|---|",
    ]
    base = {
        "Centipede-20": single,
        "Centipede-6": th["single_c6"]["steps_per_s"],
        "Ant-v5": th["single_ant"]["steps_per_s"],
    }
    for k, v in th.items():
        lines.append(
            f"| {k} | {v['env']} | {v['kind']} | {v['num_envs']} | {v['steps_per_s']:.0f} | "
            f"{v['steps_per_s'] / base[v['env']]:.1f} |"
        )
    pi = res["ppo_iteration"]
    lines += [
        "",
        f"Full PPO iteration (snowflake, Centipede-20, {pi['num_envs']} envs, "
        f"{pi['rollout_steps']} steps, "
        f"{pi['epochs']} epochs on {res['device']}): {pi['iteration_s']:.2f} s vs "
        f"{pi['pure_stepping_s']:.2f} s pure stepping "
        f"(+{pi['overhead_frac']:.0%}; rollout {pi['rollout_s']:.2f} s, "
        f"update {pi['update_s']:.2f} s).",
        "",
        f"## Policy-divergence signature, Centipede-20 (REDUCED: {train_s:.0f} s of training "
        "per run, 2 seeds)",
        "",
        "| policy | steps/run | mean approx-KL | mean clip frac | KL / MLP | clip / MLP "
        "| last return |",
        "|---|---|---|---|---|---|---|",
    ]
    for pol, r in res.get("paper_effect", {}).items():
        lines.append(
            f"| {pol} | {min(r['steps_per_run'])} | {r['approx_kl']:.4g} | {r['clip_frac']:.4g} | "
            f"{r['kl_over_mlp']:.2f} | {r['clip_over_mlp']:.2f} | {r['return_last']:.1f} |"
        )
    tr = res["transfer"]
    targets = list(next(iter(tr.values()))["transfer"]) if tr else []
    lines += [
        "",
        f"## Zero-shot transfer from Centipede-6 (REDUCED: {train_s:.0f} s of training, 1 seed, "
        "deterministic, 3 episodes)",
        "",
        "| policy | train steps | " + " | ".join(targets) + " |",
        "|---|---|" + "---|" * len(targets),
    ]
    for pol, r in tr.items():
        lines.append(
            f"| {pol} | {r['steps']} | "
            + " | ".join(f"{r['transfer'][t]:.1f}" for t in targets)
            + " |"
        )
    lines += ["", f"Total wall time {res['wall_s']:.0f} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
