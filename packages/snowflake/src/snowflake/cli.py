"""Command line interface: ``snowflake train|eval|transfer|render|bench-env|plot|repro``."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_SUFFIX = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_steps(text: str) -> int:
    """``"10M"`` → 10_000_000, ``"300k"`` → 300_000, ``"4096"`` → 4096."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)\s*", str(text))
    if not m:
        raise argparse.ArgumentTypeError(
            f"cannot parse step count {text!r}; use e.g. 300k, 10M or 4096."
        )
    return int(float(m.group(1)) * _SUFFIX.get(m.group(2).lower(), 1))


def _env_name(x: str) -> str:
    return x if not x.isdigit() else f"Centipede-{x}"


def cmd_train(a: argparse.Namespace) -> int:
    import torch

    from ._ppo import PPOConfig
    from ._trainer import Trainer

    if a.torch_threads:
        torch.set_num_threads(a.torch_threads)
    out = Path(a.out)
    if (out / "ckpt_last.pt").exists() and not a.fresh:
        print(f"resuming from {out / 'ckpt_last.pt'}")
        tr = Trainer.resume(out)
    else:
        over = {
            k: v
            for k, v in {
                "rollout_steps": a.rollout_steps,
                "minibatch_size": a.minibatch,
                "epochs": a.epochs,
                "lr": a.lr,
                "clip": a.clip,
                "norm_reward": False if a.no_reward_scaling else None,
                "cuda_graph": False if a.no_cuda_graph else None,
                "compile": True if a.compile else None,
                "split_streams": True if a.split_streams else None,
            }.items()
            if v is not None
        }
        cfg = PPOConfig.preset(
            a.preset,
            env=_env_name(a.env),
            policy=a.policy,
            total_steps=a.steps,
            num_envs=a.num_envs,
            seed=a.seed,
            vector=a.vector,
            num_threads=a.threads,
            device=a.device,
            rollout_device=a.rollout_device,
            pipeline=a.pipeline,
            decoder_gain=a.decoder_gain,
            checkpoint_every=a.checkpoint_every,
            tensorboard=a.tensorboard,
            **over,
        )
        tr = Trainer(cfg, out)
    tr.train(progress=not a.quiet)
    tr.close()
    print(f"done: {tr.global_step} steps, outputs in {out}")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    from ._eval import evaluate, load_policy

    env = _env_name(a.env) if a.env else None
    agent = load_policy(a.ckpt, env)
    res = evaluate(agent, env or _train_env(a.ckpt), a.episodes, a.seed, not a.stochastic)
    print(json.dumps(res, indent=2))
    return 0


def _train_env(ckpt: str) -> str:
    import torch

    return torch.load(ckpt, weights_only=False)["config"]["env"]


def cmd_transfer(a: argparse.Namespace) -> int:
    from ._eval import transfer
    from ._report import markdown_table

    targets = [_env_name(t.strip()) for t in a.to.split(",") if t.strip()]
    rows = transfer(a.ckpt, targets, a.episodes, a.seed)
    table = markdown_table(
        ["env", "return", "std", "length"],
        [[r["env"], r["return_mean"], r["return_std"], r["length_mean"]] for r in rows],
    )
    print(table)
    if a.out:
        Path(a.out).write_text(table + "\n")
    return 0


def cmd_render(a: argparse.Namespace) -> int:
    import mujoco
    import numpy as np
    import torch

    from ._eval import load_policy
    from ._registry import make_env

    try:
        import imageio.v2 as imageio
    except ImportError as e:
        raise SystemExit("render needs imageio: pip install 'imageio[ffmpeg]'") from e
    env_name = _env_name(a.env) if a.env else _train_env(a.ckpt)
    agent = load_policy(a.ckpt, env_name)
    env = make_env(env_name, disable_env_checker=True)
    obs, _ = env.reset(seed=a.seed)
    base = env.unwrapped
    renderer = mujoco.Renderer(base.model, a.height, a.width)
    frames = []
    for _ in range(a.steps):
        with torch.no_grad():
            act = agent.dist(agent.normalize(torch.as_tensor(obs[None]))).mean[0].numpy()
        obs, _, term, trunc, _ = env.step(np.clip(act, -1, 1))
        renderer.update_scene(base.data, camera="track" if base.model.ncam else -1)
        frames.append(renderer.render())
        if term or trunc:
            break
    imageio.mimsave(a.out, frames, fps=round(1 / base.dt))
    print(f"wrote {len(frames)} frames to {a.out}")
    return 0


def cmd_bench_env(a: argparse.Namespace) -> int:
    from ._bench import bench_env

    res = bench_env(_env_name(a.env), a.num_envs, a.vector, a.seconds, a.threads or None)
    print(json.dumps({"env": a.env, "vector": a.vector, **res}, indent=2))
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    from ._report import plot_runs

    summary = plot_runs(a.runs, a.out, a.metric)
    print(json.dumps(summary, indent=2))
    print(f"wrote {a.out}")
    return 0


def _run_jobs(cmds: list[list[str]], jobs: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def go(c: list[str]) -> int:
        return subprocess.run(c, env=env, check=False, stdout=subprocess.DEVNULL).returncode

    with ThreadPoolExecutor(jobs) as pool:
        codes = list(pool.map(go, cmds))
    if any(codes):
        raise SystemExit(f"{sum(1 for c in codes if c)} training jobs failed: {codes}")


def cmd_repro(a: argparse.Namespace) -> int:
    from ._repro import repro

    repro(
        a.suite,
        Path(a.out),
        steps=a.steps,
        seeds=a.seeds,
        jobs=a.jobs,
        envs=a.envs,
        to=a.to,
        device=a.device,
        run_jobs=_run_jobs,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snowflake", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a policy with PPO")
    t.add_argument("--env", default="Centipede-6")
    t.add_argument("--policy", default="snowflake", choices=["snowflake", "nervenet", "mlp"])
    t.add_argument("--steps", type=parse_steps, default=parse_steps("1M"))
    t.add_argument("--num-envs", type=int, default=16)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    t.add_argument("--preset", default="snowflake", choices=["snowflake", "cleanrl"])
    t.add_argument("--vector", default="thread", choices=["thread", "process", "sync", "async"])
    t.add_argument("--threads", type=int, default=0, help="env threads (0 = min(num_envs, cores))")
    t.add_argument("--torch-threads", type=int, default=0)
    t.add_argument("--device", default="cpu", help="model and PPO update, e.g. cuda")
    t.add_argument(
        "--rollout-device",
        default="",
        help="policy calls during rollouts on a copy of the model there (e.g. cpu with "
        "--device cuda); default: --device",
    )
    t.add_argument(
        "--pipeline",
        type=int,
        default=1,
        help="env groups stepped in turn (2: one group's policy call overlaps the other's "
        "physics; --vector thread or process)",
    )
    t.add_argument(
        "--decoder-gain",
        type=float,
        default=0.1,
        help="orthogonal gain of the GNN decoder's output layer (1.0: NerveNet's plain init)",
    )
    t.add_argument("--checkpoint-every", type=int, default=10, help="updates between checkpoints")
    t.add_argument("--rollout-steps", type=int)
    t.add_argument("--minibatch", type=int)
    t.add_argument("--epochs", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--clip", type=float)
    t.add_argument(
        "--no-reward-scaling",
        action="store_true",
        help="train on raw rewards (default: divide by the running std of the discounted return)",
    )
    t.add_argument(
        "--compile",
        action="store_true",
        help="with --device cuda: torch.compile the minibatch forward/backward inside the graph",
    )
    t.add_argument(
        "--split-streams",
        action="store_true",
        help="with --device cuda: the critic's half of each PPO step on a second CUDA stream",
    )
    t.add_argument(
        "--no-cuda-graph",
        action="store_true",
        help="with --device cuda: eager PPO steps (default: each minibatch step is one CUDA-graph "
        "replay)",
    )
    t.add_argument("--tensorboard", action="store_true")
    t.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("eval", help="evaluate a checkpoint")
    e.add_argument("--ckpt", required=True)
    e.add_argument("--env")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--seed", type=int, default=12345)
    e.add_argument("--stochastic", action="store_true")
    e.set_defaults(fn=cmd_eval)
    x = sub.add_parser("transfer", help="zero-shot evaluation on other sizes")
    x.add_argument("--ckpt", required=True)
    x.add_argument("--to", default="6,8,12,20")
    x.add_argument("--episodes", type=int, default=10)
    x.add_argument("--seed", type=int, default=12345)
    x.add_argument("--out")
    x.set_defaults(fn=cmd_transfer)
    r = sub.add_parser("render", help="render a rollout offscreen to a video (MUJOCO_GL=egl)")
    r.add_argument("--ckpt", required=True)
    r.add_argument("--env")
    r.add_argument("--out", default="rollout.mp4")
    r.add_argument("--steps", type=int, default=300)
    r.add_argument("--width", type=int, default=480)
    r.add_argument("--height", type=int, default=360)
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(fn=cmd_render)
    b = sub.add_parser("bench-env", help="env steps per second")
    b.add_argument("--env", default="Centipede-20")
    b.add_argument("--num-envs", type=int, default=16)
    b.add_argument(
        "--vector", default="thread", choices=["single", "thread", "process", "sync", "async"]
    )
    b.add_argument("--threads", type=int, default=0)
    b.add_argument("--seconds", type=float, default=10.0)
    b.set_defaults(fn=cmd_bench_env)
    pl = sub.add_parser("plot", help="learning curves with seed bands (PNG)")
    pl.add_argument("runs", nargs="+")
    pl.add_argument("--out", default="curves.png")
    pl.add_argument("--metric", default="ep_return_mean")
    pl.set_defaults(fn=cmd_plot)
    rp = sub.add_parser("repro", help="paper-style experiment grid + markdown report")
    rp.add_argument("--suite", required=True, choices=["scaling", "transfer"])
    rp.add_argument("--out", default="runs/repro")
    rp.add_argument("--steps", type=parse_steps, default=parse_steps("300k"))
    rp.add_argument("--seeds", type=int, default=3)
    rp.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    rp.add_argument("--envs", default="Centipede-6,Centipede-12")
    rp.add_argument("--to", default="8,10,12,20")
    rp.add_argument("--device", default="cpu")
    rp.set_defaults(fn=cmd_repro)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``snowflake`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except (ValueError, TypeError) as e:
        print(f"snowflake {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
