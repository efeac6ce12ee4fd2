"""One round of the Centipede-20 policy-divergence runs (``gpu_run_kl.sh``), split by seed.

First, while nothing else of this job runs, the single-process Centipede-20 throughput (one
core). Then the runs named by ``--runs`` (``policy:seed,...``) start together, each a
``gpu_bench.py --worker`` process pinned to its own cores (physics on a ``ThreadedVectorEnv``
with one thread per core; the PPO update on the GPU as CUDA graphs; the GNNs' rollout policy
calls on the GPU too (one graph replay per vector step), the MLP's on its CPU), each up to
``--steps`` env steps or until the budget ends. Cores go to runs in proportion to their cost
(a GNN run weighs 5, an MLP run 4). Every 10 s the per-update rows of all runs are gathered
into ``kl_metrics.csv`` and the divergence table (``kl_merge.py``) into ``kl.md`` / ``kl.json``,
so a kill still leaves results. ``kl_merge.py`` joins the rounds' ``kl_metrics.csv`` files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import kl_merge  # a script next to this one

BENCH = Path(__file__).with_name("gpu_bench.py")
WEIGHT = {"mlp": 4.0, "nervenet": 5.0, "snowflake": 5.0}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_runs(text: str) -> tuple[list[tuple[str, int]], list[int] | None]:
    """``"mlp:0:4,nervenet:0:6"`` -> ``([("mlp", 0), ("nervenet", 0)], [4, 6])``: runs and,
    when every run names one, its number of cores (else ``None``)."""
    runs, ncores = [], []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        parts = item.split(":")
        if (
            len(parts) not in (2, 3)
            or parts[0] not in WEIGHT
            or not all(x.isdigit() for x in parts[1:])
        ):
            raise ValueError(
                f"bad run {item!r}: expected policy:seed or policy:seed:cores, policy in "
                f"{list(WEIGHT)}"
            )
        runs.append((parts[0], int(parts[1])))
        ncores.append(int(parts[2]) if len(parts) == 3 else 0)
    return runs, (ncores if all(ncores) else None)


def share_cores(
    runs: list[tuple[str, int]], cores: list[int], ncores: list[int] | None = None
) -> list[list[int]]:
    """Contiguous core blocks: ``ncores`` each when given and they fit, else sizes proportional
    to ``WEIGHT`` (at least one core each; runs share cores round-robin when there are fewer
    cores than runs). A run's 16 envs step on its cores in equal chunks, so 4, 6 or 8 cores
    waste least (5 cores step no faster than 4: some thread still has 4 envs)."""
    if ncores and sum(ncores) <= len(cores):
        n = list(ncores)
    elif len(cores) < len(runs):
        return [[cores[k % len(cores)]] for k in range(len(runs))]
    else:
        w = [WEIGHT[p] for p, _ in runs]
        n = [max(1, int(len(cores) * x / sum(w))) for x in w]
        k = 0
        while sum(n) < len(cores):  # leftover cores to the heaviest runs first
            order = sorted(range(len(runs)), key=lambda i: -w[i])
            n[order[k % len(runs)]] += 1
            k += 1
    out, start = [], 0
    for m in n:
        out.append(cores[start : start + m])
        start += m
    return out


def single_process(seconds: float) -> dict:
    """Single-process Centipede-20 steps/s on one core (this process's first allowed core)."""
    from snowflake._bench import bench_env

    r = bench_env("Centipede-20", 1, "single", seconds)
    log(f"single process Centipede-20: {r['steps_per_s']:.0f} steps/s")
    return r


def ppo_iterations(a: argparse.Namespace, cores: list[int], res: dict) -> dict:
    """``gpu_bench.ppo_iteration`` for each policy of ``--ppo-iter`` (Centipede-20, 16 envs on
    ``min(16, cores)`` threads; update on the GPU as CUDA graphs, rollout policy on the GPU for
    the GNN and on the CPU for the MLP), each failure recorded, not raised."""
    import torch
    from gpu_bench import ppo_iteration

    dev = "cuda" if a.device != "cpu" and torch.cuda.is_available() else "cpu"
    if dev == "cuda" and os.environ.get("SNOWFLAKE_GPUS"):
        dev = f"cuda:{os.environ['SNOWFLAKE_GPUS'].split(',')[0]}"
    out = {}
    for item in [x for x in a.ppo_iter.split(",") if x]:
        if time.time() > a.t0 + a.prelude_s:  # the runs need the rest of the budget
            log(f"PPO iteration {item}: skipped (past {a.prelude_s:.0f} s)")
            continue
        pol, _, vec = item.partition(":")  # e.g. snowflake:process (ProcessVectorEnv)
        roll = "" if dev == "cpu" else ("cpu" if pol == "mlp" else dev)
        nc = min(16, len(cores))
        try:
            r = ppo_iteration(
                pol, nc, a.smoke, time.time() + 40, dev, True, roll, None, 1, vec or "thread"
            )
        except Exception as e:
            out[item] = {"error": repr(e)[:500]}
            log(f"PPO iteration {item}: FAILED {e!r}")
            continue
        out[item] = r
        ph = ", ".join(f"{k} {v:.3f}" for k, v in r["phases_s"].items())
        log(
            f"PPO iteration {item} ({dev}, rollout policy on {roll or dev}): "
            f"{r['iteration_s']:.2f} s vs {r['pure_stepping_s']:.2f} s stepping "
            f"(+{r['overhead_frac']:.0%}); phases: {ph}"
        )
    return out


def pack_unfinished(work: Path, path: Path, limit: float = 9.5e6) -> None:
    """Runs that stopped short of their steps (``ckpt_last.pt``: model, optimisers, normaliser,
    env and RNG states) with their ``config.json`` and ``metrics.csv`` into one gzipped tar,
    smallest first while under ``limit`` bytes, for ``--resume-from`` in a later round."""
    dirs = sorted(
        (d.parent for d in work.glob("*/ckpt_last.pt")),
        key=lambda d: (d / "ckpt_last.pt").stat().st_size,
    )
    if not dirs:
        return
    packed = []
    with tarfile.open(path, "w:gz") as tf:
        for d in dirs:
            tf.add(d / "config.json", f"{d.name}/config.json")
            tf.add(d / "metrics.csv", f"{d.name}/metrics.csv")
            tf.add(d / "ckpt_last.pt", f"{d.name}/ckpt_last.pt")
            packed.append(d.name)
            if path.stat().st_size > limit * 0.7:  # compressed size so far (buffered: rough)
                break
    log(f"unfinished runs packed for a later round: {packed} ({path.stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="mlp:0,nervenet:0,snowflake:0")
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/snowflake_kl"))
    p.add_argument("--work", default="/tmp/snowflake_kl_runs", help="run directories")
    p.add_argument("--budget", type=float, default=315.0, help="wall seconds for the round")
    p.add_argument("--steps", type=int, default=301_056)  # 147 updates of 2048 >= 300k
    p.add_argument("--decoder-gain", type=float, default=1.0)
    p.add_argument("--init-log-std", type=float, default=0.0)
    p.add_argument("--device", default=os.environ.get("SNOWFLAKE_DEVICE", "auto"))
    p.add_argument("--single-seconds", type=float, default=5.0)
    p.add_argument(
        "--ppo-iter",
        default="",
        help="policies whose PPO iteration is timed first (mlp,snowflake)",
    )
    p.add_argument("--prelude-s", type=float, default=60.0, help="no PPO timing after this")
    p.add_argument("--c6-process", action="store_true", help="time Centipede-6 worker processes")
    p.add_argument("--resume-from", default="", help="kl_resume.tar.gz of an earlier round")
    p.add_argument("--smoke", action="store_true", help="tiny updates (CPU smoke test)")
    a = p.parse_args()
    t0 = a.t0 = float(os.environ.get("SNOWFLAKE_T0", time.time()))
    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    runs, ncores = parse_runs(a.runs)
    if a.resume_from and not Path(a.resume_from).exists():
        log(f"no {a.resume_from}: all runs start fresh")
    elif a.resume_from:  # run directories of an earlier round: those runs continue
        with tarfile.open(a.resume_from) as tf:
            tf.extractall(work, filter="data")
        log(f"resuming {sorted(p.parent.name for p in work.glob('*/ckpt_last.pt'))}")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    import torch

    res: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": a.runs,
        "cores": cores,
        "budget_s": a.budget,
        "decoder_gain": a.decoder_gain,
        "init_log_std": a.init_log_std,
        "steps_target": a.steps,
        "cuda": torch.cuda.is_available(),
        "gpus": os.environ.get("SNOWFLAKE_GPUS", "last visible"),
    }
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        res["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if "model name" in ln)
    if a.single_seconds > 0:  # first, while this job runs nothing else
        res["single_c20"] = single_process(a.single_seconds)
    if a.c6_process:  # Centipede-6 on worker processes (one per core, up to 16)
        from snowflake._bench import bench_env

        nproc = min(16, len(cores))
        for key, kind, n, th in (
            ("single_c6", "single", 1, None),
            (f"process{nproc}_c6_x{32 * nproc}", "process", 32 * nproc, nproc),
        ):
            try:
                r = bench_env("Centipede-6", n, kind, 1.5, th)
            except Exception as e:  # the runs below must still start
                res[key] = {"error": repr(e)[:300]}
                continue
            res[key] = r
            log(f"Centipede-6 {key}: {r['steps_per_s']:.0f} steps/s")
    if a.ppo_iter:  # PPO iteration vs stepping on up to 16 of the cores, before the runs
        res["ppo_iteration"] = ppo_iterations(a, cores, res)
    blocks = share_cores(runs, cores, ncores)
    end = t0 + a.budget - 8.0  # time for final.pt, the last gathering and the plot
    procs, names = [], []
    for k, ((pol, seed), cs) in enumerate(zip(runs, blocks)):
        d = work / f"Centipede-20_{pol}_s{seed}"
        cmd = [sys.executable, str(BENCH), "--worker", "--env", "Centipede-20", "--policy", pol]
        cmd += ["--seed", str(seed), "--cores", ",".join(map(str, cs)), "--run-dir", str(d)]
        cmd += ["--train-deadline", str(end), "--eval-deadline", str(end)]
        cmd += ["--steps", str(a.steps), "--num-envs", "16", "--transfer", ""]
        cmd += ["--device", a.device, "--gpu-index", str(k)]
        cmd += ["--init-log-std", str(a.init_log_std), "--decoder-gain", str(a.decoder_gain)]
        # GNN: rollout policy on the update's GPU (graph replay, ~0.7 ms vs ~15 ms on one core);
        # MLP: on its CPU (a few small matmuls)
        cmd += ["--rollout-device", "cpu" if pol == "mlp" else "model"]
        cmd += ["--smoke"] if a.smoke else []
        n = str(len(cs))
        env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
        log_f = open(d.with_suffix(".log"), "w")  # noqa: SIM115 (closed with the process)
        procs.append(subprocess.Popen(cmd, env=env, stdout=log_f, stderr=subprocess.STDOUT))
        names.append(d.name)
    res["layout"] = dict(zip(names, blocks))
    log(f"launched {len(procs)} runs: {res['layout']}; ending at +{end - t0:.0f} s")

    def gather() -> None:
        sys.path.insert(0, str(BENCH.parent))
        from gpu_bench import collect_csv

        got = collect_csv(work, out / "kl_metrics.csv")
        res["progress"] = {k: int(c["global_step"][-1]) for k, c in got.items()}
        res["wall_s"] = time.time() - t0
        for name in names:
            with contextlib.suppress(OSError, ValueError):
                res.setdefault("workers", {})[name] = json.loads(
                    (work / name / "result.json").read_text()
                )
        if got:
            s = kl_merge.summarize(got)
            res["summary"] = s
            note = (
                f"{res['date']}, cores {cores[0]}-{cores[-1]}, decoder gain {a.decoder_gain}, "
                f"init log-std {a.init_log_std}; this round's runs only"
            )
            text = kl_merge.markdown(s, note) + "\nPer run, median per PPO iteration:\n\n"
            (out / "kl.md").write_text(text + "\n".join(kl_merge.timing(got)) + "\n")
        tmp = out / "kl.json.tmp"
        tmp.write_text(json.dumps(res, indent=2, default=str))
        os.replace(tmp, out / "kl.json")
        prog = res["progress"].items()
        log("progress " + ", ".join(f"{k.split('_', 1)[1]} {v}" for k, v in prog))

    while any(q.poll() is None for q in procs) and time.time() < end + 5.0:
        time.sleep(1.0 if a.smoke else 10.0)
        with contextlib.suppress(Exception):  # a half-written CSV row: next time
            gather()
    res["exit_codes"] = [q.poll() if q.poll() is not None else "killed" for q in procs]
    for q in procs:
        if q.poll() is None:
            q.kill()
    for name, q in zip(names, procs):
        if q.returncode not in (0, None):
            with contextlib.suppress(OSError):
                tail = (work / f"{name}.log").read_text()[-1500:]
                res.setdefault("worker_errors", {})[name] = tail
    gather()
    pack_unfinished(work, out / "kl_resume.tar.gz")
    with contextlib.suppress(Exception):
        kl_merge.plot(kl_merge.read_metrics([out / "kl_metrics.csv"]), out / "kl_c20.png")
    print((out / "kl.md").read_text() if (out / "kl.md").exists() else "no results")
    log(f"done in {time.time() - t0:.0f} s; exit codes {res['exit_codes']}")


if __name__ == "__main__":
    main()
