"""Benchmark + experiments for the GPU machine: gpu_run.sh (phase a), gpu_run_b.sh (phase b).

Phase a (alone on 16 cores, ~90 s): correctness checks, env throughput (one process,
``ThreadedVectorEnv`` incl. a thread-scaling sweep, gymnasium ``AsyncVectorEnv``) and the cost of
a full PPO iteration over pure stepping (mlp and snowflake; policy on the GPU, then on the CPU).
Phase b (12-24 cores next to other jobs, ~480 s): the paper's policy-divergence signature on
Centipede-20 (mlp / nervenet / snowflake x 3 seeds; approx-KL, closed-form KL and clip fractions
per update) and training on Centipede-6 (2 seeds each) followed by deterministic zero-shot
evaluation on Centipede-6/8/10/12/20, all runs in parallel processes until the budget ends. The
physics runs on each worker's own cores; the policy's rollout inference and PPO update on a GPU
when one is visible (``--device``/``SNOWFLAKE_DEVICE``), else on those cores.

Every worker is pinned to its cores; partial summaries are rewritten every 15 s, so a kill still
leaves results. At most 6 files per phase, flat in ``--out``.
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

_T_START = time.time()
POLICIES = ("mlp", "nervenet", "snowflake")
# With the model on a GPU, where its rollout copy runs: "cpu" (default) avoids one GPU round trip
# per env step, which cost ~40 ms per step with 15 processes sharing one GPU (19:38 UTC run).
ROLLOUT_DEVICE = os.environ.get("SNOWFLAKE_ROLLOUT_DEVICE", "cpu")
TARGETS = ("Centipede-6", "Centipede-8", "Centipede-10", "Centipede-12", "Centipede-20")
SIZES = (6, 20, 50)  # phase b "size" suite


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


def _indep_worker(job: tuple[str, int, float]) -> float:
    """Steps/s of one single-threaded ``ThreadedVectorEnv`` (a process of the "indep" case)."""
    from snowflake._bench import bench_env

    env, n, sec = job
    return bench_env(env, n, "thread", sec, 1)["steps_per_s"]


def indep(env: str, num_envs: int, procs: int, sec: float) -> dict:
    """``procs`` independent processes, each stepping ``num_envs // procs`` envs on one thread
    (no GIL shared, no communication): what the cores deliver without a shared GIL."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(procs) as pool:
        rates = pool.map(_indep_worker, [(env, num_envs // procs, sec)] * procs)
    return {"steps_per_s": float(sum(rates)), "per_process": rates, "num_envs": num_envs}


def throughput(sec: float, cores: int, smoke: bool, deadline: float) -> dict:
    """Steps/s of one env in one process, ``ThreadedVectorEnv`` and ``AsyncVectorEnv``, most
    important cases first; a case is skipped when it would end after ``deadline``."""
    from snowflake._bench import bench_env

    c = cores
    plan = [
        ("single_c20", "Centipede-20", "single", 1, 1),
        ("single_c6", "Centipede-6", "single", 1, 1),
        (f"thread{c}_c20_x{8 * c}", "Centipede-20", "thread", 8 * c, c),
        (f"thread{c}_c6_x{16 * c}", "Centipede-6", "thread", 16 * c, c),
        (f"thread{c}_c6_x{32 * c}", "Centipede-6", "thread", 32 * c, c),
        # ProcessVectorEnv: c worker processes, one thread each, shared memory
        (f"process{c}_c6_x{32 * c}", "Centipede-6", "process", 32 * c, c),
        (f"process{c}_c20_x{8 * c}", "Centipede-20", "process", 8 * c, c),
        (f"process{c}_c6_x{16 * c}", "Centipede-6", "process", 16 * c, c),
        # c independent one-thread processes: the cores' throughput without a shared GIL
        (f"indep{c}_c6_x{16 * c}", "Centipede-6", "indep", 16 * c, c),
        (f"indep{c}_c20_x{8 * c}", "Centipede-20", "indep", 8 * c, c),
        (f"async{c}_c20", "Centipede-20", "async", c, c),
        (f"async{c}_c6", "Centipede-6", "async", c, c),
        (f"thread{c}_c20_x{4 * c}", "Centipede-20", "thread", 4 * c, c),
        (f"thread{c}_c6_x{8 * c}", "Centipede-6", "thread", 8 * c, c),
        (f"thread{c}_c20_x{c}", "Centipede-20", "thread", c, c),
        (f"thread{c}_c6_x{4 * c}", "Centipede-6", "thread", 4 * c, c),
    ]
    # Thread scaling of the same batch (Centipede-20, 4 envs per core): where does it flatten?
    plan += [
        (f"thread{t}_c20_x{4 * c}", "Centipede-20", "thread", 4 * c, t)
        for t in (1, 2, 4, 8)
        if t < c
    ]
    plan += [
        ("single_ant", "Ant-v5", "single", 1, 1),
        (f"thread{c}_ant_x{4 * c}", "Ant-v5", "thread", 4 * c, c),
        (f"async{c}_ant", "Ant-v5", "async", c, c),
    ]
    if smoke or not os.environ.get("SNOWFLAKE_ANT"):  # Ant-v5: known, set SNOWFLAKE_ANT=1
        plan = [p for p in plan if "ant" not in p[0]]
    res = {}
    for key, env, kind, n, threads in plan:
        if time.time() + sec + 2.5 > deadline:
            log(f"throughput {key}: skipped (budget)")
            continue
        try:
            if kind == "indep":
                r = indep(env, n, threads, sec)
            else:
                r = bench_env(env, n, kind, sec, threads if kind in ("thread", "process") else None)
        except Exception as e:  # one failing backend must not sink the rest
            res[key] = {"env": env, "kind": kind, "num_envs": n, "error": repr(e)}
            log(f"throughput {key}: FAILED {e!r}")
            continue
        res[key] = {"env": env, "kind": kind, "num_envs": n, "threads": threads, **r}
        log(f"throughput {key}: {r['steps_per_s']:.0f} steps/s")
    return res


def ppo_iteration(
    policy: str,
    cores: int,
    smoke: bool,
    deadline: float,
    device: str = "cpu",
    graph: bool = True,
    rollout_device: str = "",
    batched_types: bool | None = None,
    pipeline: int = 1,
    vector: str = "thread",
    compile_losses: bool = False,
    split_streams: bool = False,
    iters: int = 2,
    overlap: bool = True,
    pinned_io: bool = True,
    num_envs: int = 16,
    workers: int = 0,
) -> dict:
    """Time full PPO iterations (rollout + GAE + 10 epochs) against pure stepping with the same
    vector env (``vector``: ``"thread"`` or ``"process"``, one worker per core).

    Up to ``iters`` iterations as the budget allows; of those after the first (no one-time
    costs) the one of median duration is reported (with two: the second), else the first.
    On ``device="cpu"`` the rollout runs torch on one thread (the trainer's default), the update
    of the small MLP on one thread too (its 256 x 433 matmuls gain nothing from more), the GNN's
    on ``cores``. On a GPU both the rollout's policy calls and the update run there.
    ``batched_types``: the GNN's schedule (``GNNActor.batched_types``; ``None``: batched over
    node types on CUDA, per type on the CPU). ``pipeline``: env groups stepped in turn
    (``PPOConfig.pipeline``; 2 = one group's policy call overlaps the other's physics).
    ``overlap``: with worker processes, a step's bookkeeping runs during the next step's physics
    (the trainer's default; ``False`` measures the synchronous loop). ``pinned_io``: a captured
    GPU rollout policy gets its input and returns its packed outputs through pinned buffers (the
    trainer's default). ``num_envs``: envs of the vector env (2048 transitions per iteration
    either way); ``workers``: its threads / worker processes (0: one per core, at most one per
    env). With ``pipeline=2``, ``num_envs=32`` and ``workers=32`` each group of 16 envs has a
    worker process per core, so one group's physics can use every core while the other group
    waits for its actions (EnvPool-style double buffering over more envs than cores).

    Pure stepping is measured three ways: a fresh vector env of the same kind before the
    iterations, the trainer's own vector env after them, and *paired*: right after each timed
    iteration, 2048 env steps of the trainer's own vector env with uniform random actions
    (its state saved before and restored after, so training is unaffected). The paired ratio
    (median over iterations of iteration / its stepping) is the least exposed to the drift of
    stepping rates within a run.
    """
    import torch

    import snowflake as sf
    from snowflake._bench import bench_env

    upd_threads = 1 if policy == "mlp" else cores
    torch.set_num_threads(upd_threads)
    n_env = 2 if smoke else num_envs
    n_work = workers or min(cores, n_env)
    cfg = sf.PPOConfig(
        env="Centipede-20",
        policy=policy,
        num_envs=n_env,
        num_threads=n_work,
        rollout_steps=64 if smoke else 2048,
        minibatch_size=32 if smoke else 256,
        epochs=1 if smoke else 10,
        total_steps=100 * 2048,
        device=device,
        rollout_device=rollout_device,
        cuda_graph=graph,
        pipeline=pipeline,
        vector=vector,
        compile=compile_losses,
        split_streams=split_streams,
    )
    sps = bench_env("Centipede-20", n_env, vector, 0.3 if smoke else 1.5, n_work)
    tr = sf.Trainer(cfg)
    for ag in {id(tr.agent): tr.agent, id(tr.roll_agent): tr.roll_agent}.values():
        if hasattr(ag.actor, "batched_types"):
            ag.actor.batched_types = batched_types
    tr._overlap = overlap
    tr._pinned_io = pinned_io
    t = time.time()
    rows = [tr.step()]
    last = time.time() - t  # the first includes graph capture / compilation
    done: list[dict] = []  # iterations after the first (no one-time costs)
    paired: list[float] = []  # pure stepping right after each of them
    while len(done) < max(1, iters - 1) and time.time() + last * 1.5 < deadline:
        t = time.time()
        done.append(tr.step())
        last = time.time() - t
        paired.append(paired_stepping(tr, cfg.rollout_steps))
    # the iteration of median duration among those after the first (else the first)
    its = done or rows
    order = sorted(its, key=lambda r: r["rollout_s"] + r["update_s"])
    rows = [order[(len(order) - 1) // 2]]
    iteration_times = [r["rollout_s"] + r["update_s"] for r in its]
    # pure stepping again, now on the trainer's own vector env (same workers, random actions):
    # stepping rates drift by ±10 % within a run, so the baseline is the mean of both
    sps_after = step_rate(tr.envs, 0.3 if smoke else 1.5)
    tr.close()
    pure_before = cfg.rollout_steps / sps["steps_per_s"]
    pure_after = cfg.rollout_steps / sps_after
    pure = 0.5 * (pure_before + pure_after)
    roll, upd, roll_env = rows[0]["rollout_s"], rows[0]["update_s"], rows[0]["rollout_env_s"]
    ratios = [it / st for it, st in zip(iteration_times, paired)] if done else []
    return {
        "overlap": overlap,
        "pinned_io": pinned_io,
        "workers": n_work,
        # median over iterations of (iteration / pure stepping right after it) - 1
        "overhead_paired_frac": float(np.median(ratios)) - 1.0 if ratios else float("nan"),
        "pure_stepping_paired_s": paired,
        "iteration_over_paired": ratios,
        "policy": policy,
        "device": device,
        "rollout_device": cfg.rollout_device or device,
        "iteration_s": roll + upd,
        "rollout_s": roll,
        "rollout_env_s": roll_env,  # inside envs.step; the rest is policy calls, GAE, bookkeeping
        "update_s": upd,
        "pure_stepping_s": pure,
        "pure_stepping_before_s": pure_before,  # a fresh vector env of the same kind, before
        "pure_stepping_after_s": pure_after,  # the trainer's own vector env, after
        "overhead_frac": (roll + upd) / pure - 1.0,
        "rollout_overhead_frac": roll / pure - 1.0,
        "num_envs": n_env,
        "rollout_steps": cfg.rollout_steps,
        "epochs": cfg.epochs,
        "torch_threads_update": upd_threads,
        "iterations_timed": tr.update_idx,
        "iteration_s_all": iteration_times,  # after the first, in order
        "cuda_graph": graph and device != "cpu",
        "update_graph_used": tr._graphed is not None,
        "policy_graph_used": tr._graphed_policy is not None,
        "graph_error": tr.graph_error,
        "policy_graph_error": tr.policy_graph_error,
        "policy_compile_error": getattr(tr._graphed_policy, "compile_error", ""),
        "compile_error": getattr(tr, "compile_error", ""),
        "gnn_batched_types": batched_types,
        "pipeline": pipeline,
        "vector": vector,
        "compile": compile_losses,
        "split_streams": split_streams,
        # seconds per phase (Trainer.phase_s): rollout parts summed over its vector steps, then
        # GAE, batch transfer, update (prep / issuing the minibatch steps / the sync that waits
        # for them + diagnostics) and the refresh of the rollout copy
        "phases_s": {k[5:]: v for k, v in rows[0].items() if k.startswith("time/")},
    }


def paired_stepping(tr, steps: int) -> float:
    """Seconds for ``steps`` env steps of the trainer's own vector env with uniform random
    actions; the envs' state is saved before and restored after (training is unaffected)."""
    envs = tr.envs
    state = envs.get_state()
    rng = np.random.default_rng(1)
    low, high = envs.single_action_space.low, envs.single_action_space.high
    acts = rng.uniform(low, high, size=(steps // envs.num_envs, envs.num_envs, low.size))
    t0 = time.perf_counter()
    for a in acts:
        envs.step(a)
    sec = time.perf_counter() - t0
    envs.set_state(state)
    return sec


def step_rate(envs, sec: float) -> float:
    """Env steps per second of ``envs`` (a vector env) with uniform random actions, after a
    0.3 s warm-up."""
    rng = np.random.default_rng(0)
    low, high = envs.single_action_space.low, envs.single_action_space.high
    shape = (envs.num_envs, low.size)
    t_end = time.perf_counter() + 0.3
    while time.perf_counter() < t_end:
        envs.step(rng.uniform(low, high, size=shape))
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < sec:
        envs.step(rng.uniform(low, high, size=shape))
        steps += envs.num_envs
    return steps / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------- workers
def _device(a: argparse.Namespace) -> str:
    """``cpu`` or ``cuda:<k>`` for this worker (``--device auto``: a GPU when there is one).

    The GPUs used are ``SNOWFLAKE_GPUS`` (comma-separated indices among the visible ones, runs
    spread round-robin), by default only the last visible GPU: jobs of other packages that use
    one GPU usually take the first.
    """
    import torch

    if a.device == "cpu" or (a.device == "auto" and not torch.cuda.is_available()):
        return "cpu"
    n = max(torch.cuda.device_count(), 1)
    gpus = [int(g) for g in os.environ.get("SNOWFLAKE_GPUS", str(n - 1)).split(",") if g.strip()]
    return f"cuda:{gpus[a.gpu_index % len(gpus)]}"


def _rollout_device(a: argparse.Namespace, device: str) -> str:
    """Where a worker's rollout policy copy runs: ``--rollout-device`` (``"model"``: the
    update's device, a separate copy with its normaliser on the CPU), else ``ROLLOUT_DEVICE``."""
    if device == "cpu":
        return ""
    want = a.rollout_device or ROLLOUT_DEVICE
    return device if want == "model" else want


def worker(a: argparse.Namespace) -> None:
    """One training process on its own cores: train until the deadline, optionally transfer.

    Physics always runs on the worker's cores (one stepping thread per core); the policy's
    rollout inference and PPO update run on ``--device`` (a GPU by default when present). If
    anything fails on the GPU before the first update completes, the run restarts on the CPU
    with the same seed, and ``result.json`` records why.
    """
    import torch

    import snowflake as sf

    cores = [int(c) for c in a.cores.split(",")]
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cores)
    torch.set_num_threads(len(cores))
    kw = {"rollout_steps": 64, "minibatch_size": 32, "epochs": 2} if a.smoke else {}
    out = Path(a.run_dir)
    res: dict = {"transfer": {}, "cores": cores}

    def make(device: str):
        cfg = sf.PPOConfig(
            env=a.env,
            policy=a.policy,
            seed=a.seed,
            num_envs=a.num_envs,
            num_threads=len(cores),
            total_steps=a.steps,
            checkpoint_every=10**9,
            device=device,
            rollout_device=_rollout_device(a, device),
            vector=a.vector,
            **kw,
        )
        if a.init_log_std is not None:
            cfg = sf.PPOConfig(**{**cfg.to_dict(), "init_log_std": a.init_log_std})
        if a.decoder_gain is not None:
            cfg = sf.PPOConfig(**{**cfg.to_dict(), "decoder_gain": a.decoder_gain})
        if (out / "ckpt_last.pt").exists():  # continue a run of an earlier round, same config
            keep = ("device", "rollout_device", "num_threads", "vector")
            tr = sf.Trainer.resume(out, **{k: getattr(cfg, k) for k in keep})
            res["resumed_from_update"] = tr.update_idx
        else:
            tr = sf.Trainer(cfg, out)
        tr._write_config()
        tr.wall0 = time.perf_counter()
        return tr

    dev = _device(a)
    res["device"] = dev
    t = time.perf_counter()
    tr = None
    try:
        tr = make(dev)
        row = tr.step()
    except Exception as e:  # GPU unusable here: same run on the CPU
        if dev == "cpu":
            raise
        res["device_error"], res["device"] = repr(e)[:500], "cpu"
        if tr is not None:
            with contextlib.suppress(Exception):
                tr.close()
        if not (out / "ckpt_last.pt").exists():  # (a resumed run keeps its earlier rows)
            with contextlib.suppress(OSError):
                (out / "metrics.csv").unlink()
        tr = make("cpu")
        t = time.perf_counter()
        row = tr.step()
    tr._log(row)
    last = time.perf_counter() - t
    res.update({"steps": tr.global_step, "updates": tr.update_idx})
    res["first_update_incl_setup_s"] = last
    write_json(out / "result.json", res)
    while tr.update_idx < tr.num_updates and time.time() + 1.2 * last < a.train_deadline:
        t = time.perf_counter()
        tr._log(tr.step())
        last = time.perf_counter() - t
    tr.save(out / "final.pt")
    if tr.update_idx < tr.num_updates:  # unfinished: a later round can continue it
        tr.save(out / "ckpt_last.pt")
    tr.close()
    res.update({"steps": tr.global_step, "updates": tr.update_idx})
    write_json(out / "result.json", res)
    torch.set_num_threads(len(cores))
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


def launch(a, run, cores, gpu_index, run_dir, train_deadline, eval_deadline):
    env, policy, seed, transfer = run
    cmd = [sys.executable, __file__, "--worker", "--env", env, "--policy", policy]
    cmd += ["--seed", str(seed), "--cores", ",".join(map(str, cores)), "--run-dir", str(run_dir)]
    cmd += ["--train-deadline", str(train_deadline), "--eval-deadline", str(eval_deadline)]
    cmd += ["--steps", str(a.steps), "--num-envs", str(a.num_envs), "--transfer", transfer]
    cmd += ["--episodes", str(a.episodes), "--max-eval-steps", str(a.max_eval_steps)]
    cmd += ["--device", a.device, "--gpu-index", str(gpu_index)]
    if (env == "Centipede-20" or a.suite == "size") and a.c20_init_log_std is not None:
        cmd += ["--init-log-std", str(a.c20_init_log_std)]
    if a.decoder_gain is not None:
        cmd += ["--decoder-gain", str(a.decoder_gain)]
    cmd += ["--smoke"] if a.smoke else []
    n = str(len(cores))
    env_vars = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
    log_f = open(Path(run_dir).with_suffix(".log"), "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(cmd, env=env_vars, stdout=log_f, stderr=subprocess.STDOUT)


def collect_csv(root: Path, out_csv: Path) -> dict[str, dict[str, np.ndarray]]:
    from snowflake._report import read_run

    runs: dict[str, dict[str, np.ndarray]] = {}
    for d in sorted(root.glob("Centipede*_s*")):
        try:
            _, c = read_run(d)
        except (ValueError, IndexError, KeyError):
            continue
        if c:
            runs[d.name] = c
    # Union of all runs' columns: GNN runs log other update_norm groups than MLP runs.
    header = ["run", *dict.fromkeys(k for c in runs.values() for k in c)]
    rows = []
    for name, c in runs.items():
        n = len(next(iter(c.values())))
        for i in range(n):
            rows.append([name] + [c[k][i] if k in c else "" for k in header[1:]])
    if runs:
        with open(out_csv, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    return runs


DIVERGENCE = (
    "approx_kl",
    "clip_frac",
    "kl_exact",
    "clip_frac_active",
    "kl_update",
    "approx_kl_update",
    "clip_frac_update",
)


def divergence_summary(runs: dict, env: str) -> dict:
    """Per policy: mean of each divergence metric (``DIVERGENCE``; the last two only when logged)
    per update, averaged over seeds, over all updates and over the first ``k`` updates (``k`` =
    fewest updates of any run, so GNN and MLP runs are compared at equal progress), and its ratio
    to the MLP's (``<metric>_over_mlp``, ``<metric>_over_mlp_first_k``)."""
    out: dict = {}
    sel_all = [c for k, c in runs.items() if k.startswith(f"{env}_")]
    k_common = min((len(c["approx_kl"]) for c in sel_all), default=0)
    for pol in POLICIES:
        sel = {k: c for k, c in runs.items() if k.startswith(f"{env}_{pol}_s")}
        if not sel:
            continue
        r: dict = {
            "updates_per_run": [len(c["approx_kl"]) for c in sel.values()],
            "k_common": k_common,
            "steps_per_run": [int(c["global_step"][-1]) for c in sel.values()],
            "return_last": _last_return(sel.values()),
        }
        for m in DIVERGENCE:
            cols = [_finite(c[m]) for c in sel.values() if m in c]
            if not cols or not all(x.size for x in cols):
                continue
            r[f"{m}_seeds"] = [float(np.mean(x)) for x in cols]
            r[m] = float(np.mean(r[f"{m}_seeds"]))
            r[f"{m}_first_k"] = float(np.mean([np.mean(x[:k_common]) for x in cols]))
            r[f"{m}_first5"] = float(np.mean([np.mean(x[:5]) for x in cols]))
        out[pol] = r
    if "mlp" in out:
        m0 = out["mlp"]
        for r in out.values():
            for m in DIVERGENCE:
                if m in r and m in m0:
                    r[f"{m}_over_mlp"] = r[m] / max(m0[m], 1e-12)
                    r[f"{m}_over_mlp_first_k"] = r[f"{m}_first_k"] / max(m0[f"{m}_first_k"], 1e-12)
                    r[f"{m}_over_mlp_first5"] = r[f"{m}_first5"] / max(m0[f"{m}_first5"], 1e-12)
            # names used by earlier result files
            r["kl_over_mlp"] = r.get("approx_kl_over_mlp", float("nan"))
            r["clip_over_mlp"] = r.get("clip_frac_over_mlp", float("nan"))
    return out


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


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
            if m not in c:  # e.g. runs logged before a metric existed
                continue
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
def md_paper(res: dict) -> list[str]:
    """Markdown table of the Centipede-20 divergence metrics and their ratios to the MLP's."""
    pe = res.get("paper_effect", {})
    if not pe:
        return []
    ms = [m for m in DIVERGENCE if all(m in r for r in pe.values())]
    nan = float("nan")
    lines = [
        "",
        "| policy (C-20) | updates/run | steps/run | "
        + " | ".join(f"{m} | ×mlp" for m in ms)
        + " | last return |",
        "|---|---|---|" + "---|---|" * len(ms) + "---|",
    ]
    for pol, r in pe.items():
        cells = " | ".join(f"{r[m]:.4g} | {r.get(f'{m}_over_mlp', nan):.2f}" for m in ms)
        lines.append(
            f"| {pol} | {r['updates_per_run']} | {min(r['steps_per_run'])} | {cells} | "
            f"{r['return_last']:.1f} |"
        )
    k = next(iter(pe.values()))["k_common"]
    lines += ["", f"Over the first {k} updates of every run (equal progress):", ""]
    for pol, r in pe.items():
        parts = [
            f"{m} {r[f'{m}_first_k']:.4g} ({r.get(f'{m}_over_mlp_first_k', nan):.2f}× mlp)"
            for m in ms
        ]
        lines.append(f"- {pol}: " + ", ".join(parts))
    lines += [
        "",
        "approx_kl: mean of (r − 1) − log r; clip_frac: share with |r − 1| > 0.1 (cleanrl); "
        "kl_exact: closed-form Gaussian KL(π_old ‖ π); clip_frac_active: share whose clipping "
        "zeroes the gradient (Snowflake's record_ppo_clip). Means over all minibatches of all "
        "epochs of an update, then over updates and seeds. *_update: the same between the "
        "policy before and after the whole update, on all samples of its batch.",
    ]
    return lines


def md_size(res: dict) -> list[str]:
    """Size suite: ratio to the MLP on the same size, first 5 updates and the whole run."""
    by_env = res.get("paper_effect_by_env", {})
    if not by_env:
        return []
    ms = ("kl_exact", "kl_update", "approx_kl", "clip_frac")
    lines = [
        "",
        "Ratio to the MLP of the same size (first 5 updates / whole run; 1 seed each):",
        "",
        "| env | policy | updates | " + " | ".join(ms) + " |",
        "|---|---|---|" + "---|" * len(ms),
    ]
    for env, pe in by_env.items():
        for pol, r in pe.items():
            cells = " | ".join(
                f"{r.get(f'{m}_over_mlp_first5', float('nan')):.2f} / "
                f"{r.get(f'{m}_over_mlp', float('nan')):.2f} ({r.get(f'{m}_first5', 0):.4g})"
                for m in ms
            )
            lines.append(f"| {env} | {pol} | {r['updates_per_run']} | {cells} |")
    return lines


def md_a(res: dict) -> str:
    th = res.get("throughput", {})
    base = {v["env"]: v.get("steps_per_s") for k, v in th.items() if k.startswith("single")}
    lines = [
        f"# snowflake phase a on {res['cores']} cores, {res['date']} ({res['cpu']})",
        "",
        f"Topology: {res.get('topology', {})}",
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
        if "error" in r:
            lines.append(f"| {r['policy']} on {r['device']}: {r['error'][:200]} | | | | | |")
            continue
        where = (
            f"update on {r.get('torch_threads_update', '?')} threads"
            if r.get("device", "cpu") == "cpu"
            else f"update on {r['device']}, rollout policy on {r.get('rollout_device', '?')}, "
            f"CUDA graphs update/policy {r.get('update_graph_used')}/{r.get('policy_graph_used')}"
        )
        where += ", GNN per node type" if r.get("gnn_batched_types") is False else ""
        where += f", pipeline {r['pipeline']}" if r.get("pipeline", 1) > 1 else ""
        where += ", worker processes" if r.get("vector") == "process" else ""
        lines.append(
            f"| {r['policy']} (C-20, {r['num_envs']} envs, {r['rollout_steps']} steps, "
            f"{r['epochs']} epochs, {where}) | "
            f"{r['rollout_s']:.2f} | {r['update_s']:.2f} | "
            f"{r['iteration_s']:.2f} | {r['pure_stepping_s']:.2f} | +{r['overhead_frac']:.0%} |"
        )
    its = [r for r in res.get("ppo_iteration", {}).values() if r.get("phases_s")]
    if its:
        names = list(dict.fromkeys(k for r in its for k in r["phases_s"]))
        lines += ["", "Phases of the PPO iterations above (s):", ""]
        lines += ["| policy, update / rollout policy | " + " | ".join(names) + " |"]
        lines += ["|---|" + "---|" * len(names)]
        for r in its:
            head = f"{r['policy']}, {r['device']}{'' if r.get('cuda_graph') else ' eager'} / "
            head += f"{r.get('rollout_device')}"
            head += " per-type" if r.get("gnn_batched_types") is False else ""
            head += f" pipeline {r['pipeline']}" if r.get("pipeline", 1) > 1 else ""
            head += " processes" if r.get("vector") == "process" else ""
            cells = " | ".join(f"{r['phases_s'].get(k, float('nan')):.3f}" for k in names)
            lines.append(f"| {head} | {cells} |")
    lines += ["", f"Wall time {res.get('wall_s', float('nan')):.0f} s."]
    return "\n".join(lines)


def _devices(res: dict) -> str:
    """``device: count`` of the runs that reported one (from their ``result.json``)."""
    seen: dict[str, int] = {}
    for r in res.get("devices", {}).values():
        seen[r] = seen.get(r, 0) + 1
    return ", ".join(f"{k}: {v} runs" for k, v in sorted(seen.items())) or "not reported yet"


def md_b(res: dict) -> str:
    lines = [
        f"# snowflake phase b on {res['cores']} cores, {res['date']}",
        "",
        f"Centipede-20 runs start at log-std {res.get('c20_init_log_std', -1.0)}; Centipede-6 runs "
        f"at the package default -1. GNN decoder output gain: "
        f"{res.get('decoder_gain') or 'package default 0.1'}. Devices: {_devices(res)}.",
        *md_paper(res),
        *md_size(res),
        "",
        "Zero-shot transfer from Centipede-6:",
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
    lines += ["", f"Wall time {res.get('wall_s', float('nan')):.0f} s."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- phases
def cpu_topology() -> dict:
    """Logical CPUs, threads per core and model (hyper-threads halve the physics cores)."""
    info: dict = {"logical": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for ln in out.splitlines():
            k, _, v = ln.partition(":")
            if k.strip() in ("Thread(s) per core", "Core(s) per socket", "Socket(s)", "Model name"):
                info[k.strip()] = v.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def phase_a(a, res: dict, out: Path, t0: float) -> None:
    """Throughput alone on the machine: correctness, env steps/s, PPO iteration cost."""
    cores = res["cores"]
    deadline = t0 + a.budget
    res["topology"] = cpu_topology()
    res["checks"] = correctness()
    write_json(out / "snowflake_a.json", res)
    res["throughput"] = throughput(0.3 if a.smoke else 1.5, cores, a.smoke, deadline - 45.0)
    write_json(out / "snowflake_a.json", res)
    (out / "snowflake_a.md").write_text(md_a(res))
    res["ppo_iteration"] = {}
    import torch

    dev = "cpu" if a.device == "cpu" or not torch.cuda.is_available() else "cuda"
    # (policy, device, CUDA graphs, rollout device): the MLP's per-step policy call runs on the
    # CPU (one small matmul chain), the GNN's on the GPU (~19 MFLOP per sample on Centipede-20);
    # with graphs first, then the same without them (what the graphs buy), then all on the CPU.
    gnn_roll = os.environ.get("SNOWFLAKE_GNN_ROLLOUT_DEVICE", dev)
    # On a GPU the GNN runs all node types in one batched matmul; "+pertype" is the same run
    # with the per-type schedule (one Linear/GRUCell call per node type), for comparison.
    # "+pipe2": two env groups stepped in turn, one group's policy call overlapping the other's
    # physics (PPOConfig.pipeline=2).
    plan = [
        ("mlp", dev, True, "cpu" if dev != "cpu" else "", None, 1),
        ("snowflake", dev, True, gnn_roll, None, 1),
        ("mlp", dev, True, "cpu" if dev != "cpu" else "", None, 2),
        ("snowflake", dev, True, gnn_roll, None, 2),
    ]
    plan = [(*p, "thread") for p in plan]
    # the same with worker processes stepping the envs (ProcessVectorEnv), stepping baseline too;
    # right after the two plain cases
    plan[2:2] = [
        ("mlp", dev, True, "cpu" if dev != "cpu" else "", None, 1, "process"),
        ("snowflake", dev, True, gnn_roll, None, 1, "process"),
    ]
    if dev != "cpu":  # per-type GNN schedule, the MLP's rollout policy on the GPU, eager runs
        plan += [("snowflake", dev, True, gnn_roll, False, 1, "thread")]
        plan += [("mlp", dev, True, dev, None, 1, "thread")]
        plan += [("mlp", dev, False, "cpu", None, 1, "thread")]
        plan += [("snowflake", dev, False, gnn_roll, None, 1, "thread")]
    for pol, d, g, rd, bt, pipe, vec in plan:
        key = f"{pol}@{d}" + ("" if d == "cpu" else ("+graph" if g else "+eager"))
        key += f"+rollout_{rd}" if d != "cpu" and rd else ""
        key += "+pertype" if bt is False else ""
        key += f"+pipe{pipe}" if pipe > 1 else ""
        key += "+procs" if vec == "process" else ""
        need = 3.0 if a.smoke else (40.0 if (pol, d) == ("snowflake", "cpu") else 10.0)
        if time.time() + need > deadline:
            log(f"PPO iteration {key}: skipped (budget)")
            continue
        try:
            r = ppo_iteration(
                pol, cores, a.smoke, deadline, d, g, rd if d != "cpu" else "", bt, pipe, vec
            )
        except Exception as e:  # a GPU failure must not sink the CPU measurements
            res["ppo_iteration"][key] = {"policy": pol, "device": d, "error": repr(e)}
            log(f"PPO iteration {key}: FAILED {e!r}")
            continue
        res["ppo_iteration"][key] = r
        log(
            f"PPO iteration {key}: {r['iteration_s']:.2f} s vs {r['pure_stepping_s']:.2f} s "
            f"stepping (+{r['overhead_frac']:.0%}; rollout {r['rollout_s']:.2f} s, update "
            f"{r['update_s']:.2f} s, env.step {r['rollout_env_s']:.2f} s of the rollout; "
            f"graphs update/policy {r['update_graph_used']}/"
            f"{r['policy_graph_used']} {r['graph_error'] or r['policy_graph_error']})"
        )
        res["wall_s"] = time.time() - t0
        write_json(out / "snowflake_a.json", res)
        (out / "snowflake_a.md").write_text(md_a(res))


def experiment_slots(seeds: int, suite: str = "full") -> list[list[tuple[str, str, int, str]]]:
    """Runs per core slot (``(env, policy, seed, transfer targets)``), most important first.

    Centipede-20 (paper effect): each GNN seed on its own core, the three cheap MLP seeds share
    one core (3-4x faster per step, so all runs reach similar step counts). Centipede-6
    (transfer): GNN seeds on their own cores, the MLP seeds share one core.
    """
    tg = ",".join(TARGETS)
    c20 = [[("Centipede-20", p, s, "")] for p in ("nervenet", "snowflake") for s in range(seeds)]
    c20.insert(0, [("Centipede-20", "mlp", s, "") for s in range(seeds)])
    c6 = [[("Centipede-6", p, s, tg)] for s in range(2) for p in ("snowflake", "nervenet")]
    c6.insert(2, [("Centipede-6", "mlp", s, tg) for s in range(2)])
    if suite == "size":  # one seed per (size, policy): does the GNN's update grow with size?
        return [[(f"Centipede-{n}", p, 0, "")] for n in SIZES for p in POLICIES]
    return c20 if suite == "kl" else c20 + c6


def run_layout(
    ncores: int, seeds: int, suite: str = "full"
) -> list[tuple[tuple[str, str, int, str], list[int]]]:
    """``(run, core indices)`` for phase b's 9 + 6 runs on ``ncores`` cores, no core shared by two
    runs when ``ncores`` >= 15.

    With a GPU doing the PPO update, a run's CPU cost is its physics (about 3.4x higher per step
    on Centipede-20 than on Centipede-6) plus, for the GNNs, the rollout's policy calls: every run
    first gets one core, then the spare cores go round-robin to the Centipede-20 GNN runs, the
    Centipede-20 MLP runs, the Centipede-6 GNN runs and the Centipede-6 MLP runs, in that order,
    first up to 2 cores each, then up to 3 (24 cores: 2 per Centipede-20 run, 1 per Centipede-6
    run; 20 cores: 2 for five of the six Centipede-20 GNN runs). Below 15 cores the older 12-slot
    plan applies (``experiment_slots``: MLP seeds share a core), wrapping onto the given cores.
    ``suite="kl"``: the 9 Centipede-20 runs only (16 cores: 2 per GNN run, 1-2 per MLP run);
    ``suite="size"``: one seed of each policy on Centipede-6/20/50 (spare cores to the largest).
    """
    slots = experiment_slots(seeds, suite)
    runs = [r for slot in slots for r in slot]
    if ncores < len(runs):
        return [(r, [k % ncores]) for k, slot in enumerate(slots) for r in slot]
    share = [1] * len(runs)
    spare = ncores - len(runs)
    # Spare cores go to the costliest runs first: Centipede-20 GNNs (their rollout also runs a
    # GNN per step on the CPU), then the Centipede-20 MLPs, then Centipede-6 (GNNs first).
    groups = [
        ("Centipede-50", ("nervenet", "snowflake")),
        ("Centipede-50", ("mlp",)),
        ("Centipede-20", ("nervenet", "snowflake")),
        ("Centipede-20", ("mlp",)),
        ("Centipede-6", ("nervenet", "snowflake")),
        ("Centipede-6", ("mlp",)),
    ]
    for level in (2, 3):  # everyone in priority order to 2 cores first, then to 3
        for env, pols in groups:
            for i, r in enumerate(runs):
                if spare and r[0] == env and r[1] in pols and share[i] < level:
                    share[i] += 1
                    spare -= 1
    out, start = [], 0
    for r, n in zip(runs, share):
        out.append((r, list(range(start, start + n))))
        start += n
    return out


def phase_b(a, res: dict, out: Path, t0: float) -> None:
    """Paper effect (Centipede-20) and transfer from Centipede-6, all runs in parallel on their
    own cores (policy maths on the GPU when there is one) until the budget; then zero-shot
    evaluation of the Centipede-6 runs."""
    root = Path(a.runs)
    root.mkdir(parents=True, exist_ok=True)
    avail = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    layout = run_layout(len(avail), 1 if a.smoke else 3, a.suite)
    if a.smoke:  # C-20 mlp and C-6 snowflake with transfer (kl suite: a C-20 GNN run)
        keep = [layout[0][0], next(r for r, _ in layout if r[0] == "Centipede-6" or r[1] != "mlp")]
        layout = [(r, [k % len(avail)]) for k, r in enumerate(keep)]
    t_end = t0 + a.budget - 10.0
    eval_s = 20.0 if a.smoke else 75.0
    procs, names = [], []
    for k, (run, cidx) in enumerate(layout):
        env, pol, seed, tgt = run
        cores = [avail[i] for i in cidx]
        train_end = t_end - (eval_s if tgt else 5.0)  # C-20 runs: time to write final.pt
        d = root / f"{env}_{pol}_s{seed}"
        procs.append(launch(a, run, cores, k, d, train_end, t_end - 5.0))
        names.append(d.name)
    res["c20_init_log_std"] = a.c20_init_log_std
    res["suite"], res["decoder_gain"] = a.suite, a.decoder_gain
    res["device_request"] = a.device
    res["layout"] = {f"{r[0]}_{r[1]}_s{r[2]}": [avail[i] for i in cidx] for r, cidx in layout}
    log(f"launched {len(procs)} runs on {len(avail)} cores; ending at +{t_end - t0:.0f} s")

    def poll() -> None:
        runs = collect_csv(root, out / "snowflake_b_metrics.csv")
        res["paper_effect"] = divergence_summary(runs, "Centipede-20")
        if a.suite == "size":
            res["paper_effect_by_env"] = {
                f"Centipede-{n}": divergence_summary(runs, f"Centipede-{n}") for n in SIZES
            }
        results = {}
        for d in sorted(root.glob("Centipede*/result.json")):
            with contextlib.suppress(ValueError, OSError):
                results[d.parent.name] = json.loads(d.read_text())
        res["transfer"] = {k: v for k, v in results.items() if k.startswith("Centipede-6_")}
        res["devices"] = {k: v.get("device", "?") for k, v in results.items()}
        errs = {k: v["device_error"] for k, v in results.items() if "device_error" in v}
        if errs:
            res["device_errors"] = errs
        res["final_returns"] = {
            k: float(np.mean(v)) if (v := _finite(c["ep_return_mean"][-3:])).size else None
            for k, c in runs.items()
        }
        res["wall_s"] = time.time() - t0
        write_json(out / "snowflake_b.json", res)
        (out / "snowflake_b.md").write_text(md_b(res))

    while any(p.poll() is None for p in procs) and time.time() < t_end:
        time.sleep(1.0 if a.smoke else 15.0)
        poll()
    res["worker_exit_codes"] = [p.returncode if p.poll() is not None else "killed" for p in procs]
    for p in procs:
        if p.poll() is None:
            p.kill()
    for name, p in zip(names, procs):  # keep the end of a failed worker's output
        if p.returncode not in (0, None):
            with contextlib.suppress(OSError):
                tail = (root / f"{name}.log").read_text()[-1500:]
                res.setdefault("worker_errors", {})[name] = tail
    poll()
    runs = collect_csv(root, out / "snowflake_b_metrics.csv")
    plots = [("Centipede-20", "c20", ["kl_update", "kl_exact", "clip_frac", "ep_return_mean"])]
    if a.suite == "size":  # at most 6 files: no Centipede-6 plot here
        plots.append(("Centipede-50", "c50", ["kl_update", "kl_exact", "clip_frac"]))
    else:
        plots.append(("Centipede-6", "c6", ["ep_return_mean", "ep_len_mean", "approx_kl"]))
    for env, tag, metrics in plots:
        sel = {k: c for k, c in runs.items() if k.startswith(env + "_")}
        if sel:
            plot_curves(sel, metrics, out / f"snowflake_b_{tag}.png", env)


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
    p.add_argument("--steps", type=int, default=301_056)  # 147 updates of 2048 >= 300k
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--transfer", default="")
    p.add_argument("--max-eval-steps", type=int, default=1000)
    p.add_argument(
        "--device",
        default=os.environ.get("SNOWFLAKE_DEVICE", "auto"),
        help="policy maths of phase b runs and the phase a PPO iteration: auto|cpu|cuda",
    )
    p.add_argument("--gpu-index", type=int, default=0)
    p.add_argument(
        "--rollout-device", default="", help="worker: cpu|model (default SNOWFLAKE_ROLLOUT_DEVICE)"
    )
    p.add_argument("--vector", default="thread", help="worker: thread|process vector env")
    p.add_argument("--init-log-std", type=float, default=None, help="worker: override")
    p.add_argument(
        "--suite",
        choices=("full", "kl", "size"),
        default=os.environ.get("SNOWFLAKE_B_SUITE", "full"),
        help="phase b: full (Centipede-20 divergence + Centipede-6 transfer), kl (the 9 "
        "Centipede-20 divergence runs only) or size (one seed per policy on Centipede-6/20/50)",
    )
    p.add_argument(
        "--decoder-gain",
        type=float,
        default=float(os.environ["SNOWFLAKE_DECODER_GAIN"])
        if os.environ.get("SNOWFLAKE_DECODER_GAIN")
        else None,
        help="orthogonal gain of the GNN decoder's output layer (default: the package's 0.1)",
    )
    p.add_argument(
        "--c20-init-log-std",
        type=float,
        default=float(os.environ.get("SNOWFLAKE_C20_INIT_LOG_STD", "0")),
        help="initial log-std of the Centipede-20 divergence runs (0 = σ 1, as Snowflake's code; "
        "the package default is -1)",
    )
    a = p.parse_args()
    if a.smoke:
        a.num_envs, a.episodes, a.max_eval_steps = 2, 2, 30
    if a.worker:
        worker(a)
        return
    import platform

    import gymnasium
    import mujoco
    import torch

    # The budget counts from the shell's start (SNOWFLAKE_T0) or this module's import.
    t0 = a.t0 = float(os.environ.get("SNOWFLAKE_T0", _T_START))
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
