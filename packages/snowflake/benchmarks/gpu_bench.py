"""Benchmark + experiments for the 16-core machine: gpu_run.sh (phase a), gpu_run_b.sh (phase b).

Phase a: correctness checks, env throughput (one process, ``ThreadedVectorEnv``, gymnasium
``AsyncVectorEnv``), the cost of a full PPO iteration over pure stepping (mlp and snowflake), then
the paper's policy-divergence signature on Centipede-20 (mlp / nervenet / snowflake × 3 seeds, mean
approx-KL and clip fraction per update) trained in parallel processes until the wall budget ends.
Phase b: train mlp / nervenet / snowflake on Centipede-6 (2 seeds each) until the budget, then
evaluate each deterministically on Centipede-6/8/10/12/20 (zero-shot transfer).

Every worker is pinned to its own cores; partial summaries are rewritten every 15 s, so a kill still
leaves results. At most 5 files per phase, flat in ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

POLICIES = ("mlp", "nervenet", "snowflake")
TARGETS = ("Centipede-6", "Centipede-8", "Centipede-10", "Centipede-12", "Centipede-20")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- phase a pieces
def correctness() -> dict:
    import gymnasium as gym
    import mujoco
    import torch

    import snowflake as sf

    for n, (d, a) in {6: (139, 16), 20: (433, 58)}.items():
        e = gym.make(f"Centipede-{n}-v0")
        assert e.observation_space.shape == (d,), n
        assert e.action_space.shape == (a,), n
        e.reset(seed=0)
        for _ in range(50):
            e.step(np.zeros(a, np.float32))
        assert np.abs(e.unwrapped.data.cfrc_ext).sum() > 0, "cfrc_ext is zero"
        e.close()
    v = sf.make_vector_env("Centipede-20", 4, "thread", 4)  # threaded stepper == one env alone
    s = gym.make("Centipede-20-v0", disable_env_checker=True)
    ov, _ = v.reset(seed=7)
    os_, _ = s.reset(seed=7)
    rng = np.random.default_rng(0)
    diff = float(np.abs(ov[0] - os_).max())
    for _ in range(20):
        act = rng.uniform(-1, 1, (4, 58))
        ov, rv, tv, *_ = v.step(act)
        os_, rs, ts, *_ = s.step(act[0])
        if tv[0] or ts:
            break
        diff = max(diff, float(np.abs(ov[0] - os_).max()), abs(float(rv[0] - rs)))
    v.close()
    assert diff == 0.0, f"threaded stepper differs from a single env by {diff}"
    agent, _, _ = sf.build_agent("Centipede-6", "snowflake")
    agent.bind(sf.build_morphology(mujoco.MjModel.from_xml_string(sf.centipede_xml(100))))
    with torch.no_grad():
        assert agent.actor(torch.zeros(2, sf.obs_dim(100)))[0].shape == (2, 298)
    return {"threaded_equals_single": True, "gnn_c6_runs_on_c100": True}


def throughput(sec: float, cores: int, smoke: bool) -> dict:
    from snowflake._bench import bench_env

    plan = [
        ("single_c20", "Centipede-20", "single", 1),
        ("single_c6", "Centipede-6", "single", 1),
        ("single_ant", "Ant-v5", "single", 1),
        (f"thread{cores}_c20_x{cores}", "Centipede-20", "thread", cores),
        (f"thread{cores}_c20_x{4 * cores}", "Centipede-20", "thread", 4 * cores),
        (f"thread{cores}_c6_x{4 * cores}", "Centipede-6", "thread", 4 * cores),
        (f"thread{cores}_c6_x{8 * cores}", "Centipede-6", "thread", 8 * cores),
        (f"thread{cores}_ant_x{4 * cores}", "Ant-v5", "thread", 4 * cores),
        (f"async{cores}_c20", "Centipede-20", "async", cores),
        (f"async{cores}_c6", "Centipede-6", "async", cores),
        (f"async{cores}_ant", "Ant-v5", "async", cores),
    ]
    if smoke:
        plan = [p for p in plan if "x8" not in p[0] and "ant_x" not in p[0]]
    res = {}
    for key, env, kind, n in plan:
        try:
            r = bench_env(env, n, kind, sec, cores if kind == "thread" else None)
        except Exception as e:  # one failing backend must not sink the rest
            res[key] = {"env": env, "kind": kind, "num_envs": n, "error": repr(e)}
            log(f"throughput {key}: FAILED {e!r}")
            continue
        res[key] = {"env": env, "kind": kind, "num_envs": n, **r}
        log(f"throughput {key}: {r['steps_per_s']:.0f} steps/s")
    return res


def ppo_iteration(policy: str, cores: int, smoke: bool) -> dict:
    """Time full PPO iterations (rollout + GAE + 10 epochs) against pure threaded stepping."""
    import torch

    import snowflake as sf
    from snowflake._bench import bench_env

    torch.set_num_threads(cores)
    n_env = 2 if smoke else 16
    cfg = sf.PPOConfig(
        env="Centipede-20",
        policy=policy,
        num_envs=n_env,
        num_threads=min(cores, n_env),
        rollout_steps=64 if smoke else 2048,
        minibatch_size=32 if smoke else 256,
        epochs=1 if smoke else 10,
        total_steps=100 * 2048,
    )
    tr = sf.Trainer(cfg)
    tr.step()  # warm-up
    rows = [tr.step() for _ in range(2 if policy == "mlp" and not smoke else 1)]
    tr.close()
    sps = bench_env("Centipede-20", n_env, "thread", 0.5 if smoke else 3.0, min(cores, n_env))
    pure = cfg.rollout_steps / sps["steps_per_s"]
    roll = float(np.mean([r["rollout_s"] for r in rows]))
    upd = float(np.mean([r["update_s"] for r in rows]))
    return {
        "policy": policy,
        "iteration_s": roll + upd,
        "rollout_s": roll,
        "update_s": upd,
        "pure_stepping_s": pure,
        "overhead_frac": (roll + upd) / pure - 1.0,
        "rollout_overhead_frac": roll / pure - 1.0,
        "num_envs": n_env,
        "rollout_steps": cfg.rollout_steps,
        "epochs": cfg.epochs,
        "torch_threads": cores,
    }


# ----------------------------------------------------------------------------- workers
def worker(a: argparse.Namespace) -> None:
    """One training process on its own cores: train until the deadline, optionally transfer."""
    import torch

    import snowflake as sf

    cores = [int(c) for c in a.cores.split(",")]
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cores)
    torch.set_num_threads(len(cores))
    kw = {"rollout_steps": 64, "minibatch_size": 32, "epochs": 2} if a.smoke else {}
    cfg = sf.PPOConfig(
        env=a.env,
        policy=a.policy,
        seed=a.seed,
        num_envs=a.num_envs,
        num_threads=len(cores),
        total_steps=a.steps,
        checkpoint_every=10**9,
        **kw,
    )
    out = Path(a.run_dir)
    tr = sf.Trainer(cfg, out)
    tr._write_config()
    tr.wall0 = time.perf_counter()
    last = 0.0
    while tr.update_idx < tr.num_updates and (
        time.time() + 1.2 * last < a.train_deadline or (a.smoke and tr.update_idx == 0)
    ):
        t = time.perf_counter()
        tr._log(tr.step())
        last = time.perf_counter() - t
    tr.save(out / "final.pt")
    tr.close()
    res: dict = {"steps": tr.global_step, "updates": tr.update_idx, "transfer": {}}
    write_json(out / "result.json", res)
    for t in [x for x in a.transfer.split(",") if x]:
        if time.time() > a.eval_deadline:
            break
        r = sf.evaluate(
            sf.load_policy(out / "final.pt", t),
            t,
            a.episodes,
            seed=123,
            num_threads=len(cores),
            max_steps=a.max_eval_steps,
        )
        res["transfer"][t] = r
        write_json(out / "result.json", res)


def diag_worker(a: argparse.Namespace) -> None:
    """The package's 30k-step learning-signal check (Centipede-6, 2 envs, fixed seed) with the last
    decoder layer re-initialised at gain ``--diag-gain`` (0 keeps the default init)."""
    import torch

    import snowflake as sf

    cores = [int(c) for c in a.cores.split(",")]
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cores)
    torch.set_num_threads(1)
    cfg = sf.PPOConfig(
        env="Centipede-6",
        policy=a.policy,
        num_envs=2,
        total_steps=2048 if a.smoke else 30720,
        rollout_steps=1024,
        minibatch_size=256,
        epochs=5,
        lr=1e-3,
        clip=0.2,
        num_threads=1,
        seed=0,
    )
    tr = sf.Trainer(cfg)
    if a.diag_gain > 0 and hasattr(tr.agent.actor, "decoder"):
        with torch.no_grad():  # the decoder is frozen for snowflake: not in the optimiser
            torch.nn.init.orthogonal_(tr.agent.actor.decoder[-1].weight, a.diag_gain)
    while tr.update_idx < tr.num_updates and time.time() < a.train_deadline:
        tr.step()
    tr.close()
    eps = tr.episodes
    res = {
        "policy": a.policy,
        "decoder_gain": a.diag_gain or "default",
        "steps": tr.global_step,
        "episodes": len(eps),
        "first10_len": round(float(np.mean([e[1] for e in eps[:10]])), 2) if eps else None,
        "last10_len": round(float(np.mean([e[1] for e in eps[-10:]])), 2) if eps else None,
        "last10_return": round(float(np.mean([e[0] for e in eps[-10:]])), 2) if eps else None,
    }
    Path(a.run_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(a.run_dir) / "diag.json", res)


def launch(a, env, policy, seed, cores, run_dir, train_deadline, eval_deadline, transfer=""):
    cmd = [sys.executable, __file__, "--worker", "--env", env, "--policy", policy]
    if env == "diag":  # policy = "<preset>:<decoder gain>"
        policy, gain = policy.split(":")
        cmd = [sys.executable, __file__, "--worker", "--policy", policy, "--diag-gain", gain]
    cmd += ["--seed", str(seed), "--cores", ",".join(map(str, cores)), "--run-dir", str(run_dir)]
    cmd += ["--train-deadline", str(train_deadline), "--eval-deadline", str(eval_deadline)]
    cmd += ["--steps", str(a.steps), "--num-envs", str(a.num_envs), "--transfer", transfer]
    cmd += ["--episodes", str(a.episodes), "--max-eval-steps", str(a.max_eval_steps)]
    cmd += ["--smoke"] if a.smoke else []
    env_vars = {**os.environ, "OMP_NUM_THREADS": str(len(cores)), "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env_vars, stdout=subprocess.DEVNULL)


def assign_cores(avail: list[int], want: list[int]) -> list[list[int]]:
    """Give run i up to ``want[i]`` cores of ``avail``, disjoint whenever there are at least as many
    cores as runs. If the runs ask for more cores than there are, the largest requests shrink first
    (never below 1): multi-threaded torch workers that share cores with other processes ran their
    PPO updates 10-100x slower on the 10-core phase b of 2026-11-29. Only with more runs than cores
    do runs share cores (round-robin)."""
    if not avail or any(w < 1 for w in want):
        raise ValueError(f"need at least one core and want >= 1 per run; got {avail=}, {want=}")
    want = list(want)
    while sum(want) > len(avail) and max(want) > 1:
        want[want.index(max(want))] -= 1
    out, k = [], 0
    for w in want:
        out.append([avail[(k + j) % len(avail)] for j in range(w)])
        k += w
    return out


def run_grid(a, runs: list[tuple], root: Path, t_end: float, eval_s: float, poll) -> list:
    """Launch ``runs`` = [(env, policy, seed, ncores, transfer)], poll, kill stragglers at t_end."""
    avail = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    # At least 60 s of training even if earlier stages ran long (the shell timeout is 530 s).
    t_end = min(max(t_end, time.time() + 60.0 + eval_s), a.t0 + 515.0)
    cores = assign_cores(avail, [r[3] for r in runs])
    procs = [
        launch(a, env, pol, s, c, root / f"{env}_{pol}_s{s}", t_end - eval_s, t_end - 10, tgt)
        for (env, pol, s, _, tgt), c in zip(runs, cores)
    ]
    until = time.strftime("%H:%M:%S", time.localtime(t_end - eval_s))
    log(f"launched {len(procs)} runs; training until {until}")
    while any(p.poll() is None for p in procs) and time.time() < t_end:
        time.sleep(1.0 if a.smoke else 15.0)
        poll()
    codes = []
    for p in procs:
        if p.poll() is None:
            p.kill()
            codes.append("killed")
        else:
            codes.append(p.returncode)
    return codes


def collect_csv(root: Path, out_csv: Path) -> dict[str, dict[str, np.ndarray]]:
    from snowflake._report import read_run

    runs, header, rows = {}, None, []
    for d in sorted(root.glob("Centipede*_s*")):
        try:
            _, c = read_run(d)
        except (ValueError, IndexError, KeyError):
            continue
        if not c:
            continue
        runs[d.name] = c
        keys = list(c)
        header = header or ["run", *keys]
        for i in range(len(c[keys[0]])):
            rows.append([d.name] + [c[k][i] if k in c else "" for k in header[1:]])
    if header:
        with open(out_csv, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    return runs


def divergence_summary(runs: dict, env: str) -> dict:
    """Mean approx-KL / clip fraction per policy over all updates and over the first ``k`` updates
    (``k`` = fewest updates of any run, so GNN and MLP runs are compared at equal progress)."""
    out: dict = {}
    sel_all = [c for k, c in runs.items() if k.startswith(f"{env}_")]
    k_common = min((len(c["approx_kl"]) for c in sel_all), default=0)
    for pol in POLICIES:
        sel = {k: c for k, c in runs.items() if k.startswith(f"{env}_{pol}_s")}
        if not sel:
            continue
        kl = [float(np.mean(c["approx_kl"])) for c in sel.values()]
        cf = [float(np.mean(c["clip_frac"])) for c in sel.values()]
        out[pol] = {
            "approx_kl": float(np.mean(kl)),
            "clip_frac": float(np.mean(cf)),
            "approx_kl_seeds": kl,
            "clip_frac_seeds": cf,
            "updates_per_run": [len(c["approx_kl"]) for c in sel.values()],
            "k_common": k_common,
            "approx_kl_first_k": float(
                np.mean([np.mean(c["approx_kl"][:k_common]) for c in sel.values()])
            ),
            "clip_frac_first_k": float(
                np.mean([np.mean(c["clip_frac"][:k_common]) for c in sel.values()])
            ),
            "steps_per_run": [int(c["global_step"][-1]) for c in sel.values()],
            "return_last": _last_return(sel.values()),
        }
    if "mlp" in out:
        for r in out.values():
            r["kl_over_mlp"] = r["approx_kl"] / max(out["mlp"]["approx_kl"], 1e-12)
            r["clip_over_mlp"] = r["clip_frac"] / max(out["mlp"]["clip_frac"], 1e-12)
            m = out["mlp"]
            r["kl_over_mlp_first_k"] = r["approx_kl_first_k"] / max(m["approx_kl_first_k"], 1e-12)
            r["clip_over_mlp_first_k"] = r["clip_frac_first_k"] / max(m["clip_frac_first_k"], 1e-12)
    return out


def _last_return(cols) -> float:
    vals = [c["ep_return_mean"][-3:] for c in cols]
    vals = [v[np.isfinite(v)] for v in vals]
    return float(np.mean([v.mean() for v in vals if v.size])) if any(v.size for v in vals) else 0.0


def plot_curves(runs: dict, metrics: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.3 * len(metrics), 3.6))
    colors = {"mlp": "C0", "nervenet": "C3", "snowflake": "C2"}
    for name, c in sorted(runs.items()):
        pol = name.split("_")[1]
        for ax, m in zip(axes, metrics):
            lab = pol if name.endswith("_s0") else None
            ax.plot(c["global_step"], c[m], color=colors.get(pol, "k"), alpha=0.8, label=lab)
    for ax, m in zip(axes, metrics):
        ax.set_title(f"{title}: {m}", fontsize=9)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- reports
def md_a(res: dict) -> str:
    th = res.get("throughput", {})
    base = {v["env"]: v.get("steps_per_s") for k, v in th.items() if k.startswith("single")}
    lines = [
        f"# snowflake phase a on {res['cores']} cores, {res['date']} ({res['cpu']})",
        "",
        "| case | env | backend | envs | steps/s | × one process |",
        "|---|---|---|---|---|---|",
    ]
    for k, v in th.items():
        sps, b = v.get("steps_per_s"), base.get(v["env"])
        lines.append(
            f"| {k} | {v['env']} | {v['kind']} | {v['num_envs']} | "
            + (f"{sps:.0f} | {sps / b:.1f} |" if sps and b else f"{v.get('error', '-')} | - |")
        )
    lines += [
        "",
        "| PPO iteration | rollout s | update s | iteration s | pure stepping s | overhead |",
    ]
    lines += ["|---|---|---|---|---|---|"]
    for r in res.get("ppo_iteration", {}).values():
        lines.append(
            f"| {r['policy']} (C-20, {r['num_envs']} envs, {r['rollout_steps']} steps, "
            f"{r['epochs']} epochs) | {r['rollout_s']:.2f} | {r['update_s']:.2f} | "
            f"{r['iteration_s']:.2f} | {r['pure_stepping_s']:.2f} | +{r['overhead_frac']:.0%} |"
        )
    lines += [
        "",
        "| policy (C-20) | updates/run | steps/run | approx-KL | clip frac | KL/mlp | clip/mlp "
        "| last return |",
    ]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for pol, r in res.get("paper_effect", {}).items():
        lines.append(
            f"| {pol} | {r['updates_per_run']} | {min(r['steps_per_run'])} | "
            f"{r['approx_kl']:.4g} | "
            f"{r['clip_frac']:.4g} | {r.get('kl_over_mlp', float('nan')):.2f} | "
            f"{r.get('clip_over_mlp', float('nan')):.2f} | {r['return_last']:.1f} |"
        )
    pe = res.get("paper_effect", {})
    if pe:
        k = next(iter(pe.values()))["k_common"]
        lines += ["", f"Over the first {k} updates of every run (equal progress):", ""]
        for pol, r in pe.items():
            lines.append(
                f"- {pol}: approx-KL {r['approx_kl_first_k']:.4g} "
                f"({r.get('kl_over_mlp_first_k', float('nan')):.2f}× mlp), clip frac "
                f"{r['clip_frac_first_k']:.4g} "
                f"({r.get('clip_over_mlp_first_k', float('nan')):.2f}× mlp)"
            )
    lines += ["", f"Wall time {res.get('wall_s', float('nan')):.0f} s."]
    return "\n".join(lines)


def md_b(res: dict) -> str:
    lines = [
        f"# snowflake phase b (transfer from Centipede-6) on {res['cores']} cores, {res['date']}",
        "",
        "| run | train steps | " + " | ".join(TARGETS) + " |",
        "|---|---|" + "---|" * len(TARGETS),
    ]
    for name, r in sorted(res.get("transfer", {}).items()):
        cells = [
            f"{r['transfer'][t]['return_mean']:.1f} ({r['transfer'][t]['length_mean']:.0f})"
            if t in r["transfer"]
            else "-"
            for t in TARGETS
        ]
        lines.append(f"| {name} | {r['steps']} | " + " | ".join(cells) + " |")
    lines += ["", "Mean return (mean episode length), deterministic actions."]
    for r in res.get("learning_diag", []):
        lines.append(
            f"- learning check {r['policy']} (decoder gain {r['decoder_gain']}, "
            f"{r['steps']} steps): "
            f"episode length first 10 {r['first10_len']} → last 10 {r['last10_len']}, "
            f"last-10 return {r['last10_return']}"
        )
    lines += ["", f"Wall time {res.get('wall_s', float('nan')):.0f} s."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- phases
def phase_a(a, res: dict, out: Path, t0: float) -> None:
    cores = res["cores"]
    res["checks"] = correctness()
    write_json(out / "snowflake_a.json", res)
    res["throughput"] = throughput(0.3 if a.smoke else 3.0, cores, a.smoke)
    write_json(out / "snowflake_a.json", res)
    res["ppo_iteration"] = {}
    for pol in ("mlp", "snowflake"):
        r = ppo_iteration(pol, cores, a.smoke)
        res["ppo_iteration"][pol] = r
        log(
            f"PPO iteration {pol}: {r['iteration_s']:.2f} s vs {r['pure_stepping_s']:.2f} s "
            f"stepping (+{r['overhead_frac']:.0%}; update {r['update_s']:.2f} s)"
        )
        write_json(out / "snowflake_a.json", res)
    root = Path(a.runs)
    seeds = range(1 if a.smoke else 3)
    grid = [("Centipede-20", p, s, 1 if p == "mlp" else 2, "") for p in POLICIES for s in seeds]

    def poll() -> None:
        runs = collect_csv(root, out / "snowflake_a_metrics.csv")
        res["paper_effect"] = divergence_summary(runs, "Centipede-20")
        res["wall_s"] = time.time() - t0
        write_json(out / "snowflake_a.json", res)

    res["worker_exit_codes"] = run_grid(a, grid, root, t0 + a.budget, 0.0, poll)
    poll()
    runs = collect_csv(root, out / "snowflake_a_metrics.csv")
    if runs:
        plot_curves(
            runs,
            ["approx_kl", "clip_frac", "ep_return_mean"],
            out / "snowflake_a_c20.png",
            "Centipede-20",
        )


def phase_b(a, res: dict, out: Path, t0: float) -> None:
    root = Path(a.runs)
    tg = ",".join(TARGETS)
    seeds = range(1 if a.smoke else 2)
    grid = [("Centipede-6", p, s, 1 if p == "mlp" else 3, tg) for p in POLICIES for s in seeds]
    grid += [("diag", f"snowflake:{g}", 0, 1, "") for g in (0, 1.0)]  # default 0.1 vs old 1.0

    def poll() -> None:
        runs = collect_csv(root, out / "snowflake_b_metrics.csv")
        res["transfer"] = {
            d.parent.name: json.loads(d.read_text()) for d in sorted(root.glob("*/result.json"))
        }
        res["learning_diag"] = [json.loads(d.read_text()) for d in sorted(root.glob("*/diag.json"))]
        res["final_returns"] = {
            k: float(np.nanmean(c["ep_return_mean"][-3:])) for k, c in runs.items()
        }
        res["wall_s"] = time.time() - t0
        write_json(out / "snowflake_b.json", res)

    eval_s = 25.0 if a.smoke else 90.0
    res["worker_exit_codes"] = run_grid(a, grid, root, t0 + a.budget, eval_s, poll)
    poll()
    runs = collect_csv(root, out / "snowflake_b_metrics.csv")
    if runs:
        plot_curves(
            runs,
            ["ep_return_mean", "ep_len_mean", "approx_kl"],
            out / "snowflake_b_c6.png",
            "Centipede-6",
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--phase", choices=("a", "b"), default="a")
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/snowflake_gpu"))
    p.add_argument("--runs", default="/tmp/snowflake_runs")
    p.add_argument("--budget", type=float, default=500.0, help="wall seconds for the whole phase")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--worker", action="store_true")
    p.add_argument("--env", default="Centipede-20")
    p.add_argument("--policy", default="snowflake")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cores", default="0")
    p.add_argument("--run-dir", default="")
    p.add_argument("--train-deadline", type=float, default=0.0)
    p.add_argument("--eval-deadline", type=float, default=0.0)
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--transfer", default="")
    p.add_argument("--max-eval-steps", type=int, default=1000)
    p.add_argument("--diag-gain", type=float, default=-1.0)
    a = p.parse_args()
    if a.smoke:
        a.num_envs, a.episodes, a.max_eval_steps = 2, 2, 30
    if a.worker:
        diag_worker(a) if a.diag_gain >= 0 else worker(a)
        return
    import platform

    import gymnasium
    import mujoco
    import torch

    t0 = a.t0 = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res = {
        "phase": a.phase,
        "date": time.strftime("%Y-%m-%d"),
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "smoke": a.smoke,
        "budget_s": a.budget,
        "versions": {
            "mujoco": mujoco.__version__,
            "gymnasium": gymnasium.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
    }
    try:
        with open("/proc/cpuinfo") as f:
            res["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if "model name" in ln)
    except (OSError, StopIteration):
        pass
    log(f"phase {a.phase}: {res['cores']} cores, {res['cpu']}, budget {a.budget:.0f} s")
    if a.phase == "a":
        phase_a(a, res, out, t0)
        text = md_a(res)
    else:
        phase_b(a, res, out, t0)
        text = md_b(res)
    res["wall_s"] = time.time() - t0
    write_json(out / f"snowflake_{a.phase}.json", res)
    (out / f"snowflake_{a.phase}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
