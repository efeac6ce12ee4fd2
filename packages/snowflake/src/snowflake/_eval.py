"""Checkpoint loading, deterministic evaluation and zero-shot size transfer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._graph import morphology_from_env
from ._policies import ActorCritic
from ._registry import make_env
from ._vector import ThreadedVectorEnv


def load_policy(ckpt: str | Path | dict[str, Any], env: str | None = None) -> ActorCritic:
    """Load a checkpoint's model and bind it to ``env`` (default: its training env).

    A GNN checkpoint runs on any agent with the same node types (Centipede-6 → Centipede-100);
    an MLP checkpoint zero-pads/truncates observations and actions.

    Raises:
        ValueError: not a snowflake checkpoint, or the target env's node types are unknown.
    """
    data = (
        torch.load(ckpt, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict)
        else ckpt
    )
    if not isinstance(data, dict) or "agent" not in data or "config" not in data:
        raise ValueError(
            f"{ckpt!s} is not a snowflake checkpoint (expected keys 'agent' and 'config')."
        )
    train_env = data["config"]["env"]
    probe = make_env(train_env, disable_env_checker=True)
    agent = ActorCritic(morphology_from_env(probe), actor=data["actor"])
    probe.close()
    try:
        agent.load_state_dict(data["agent"])
    except RuntimeError as e:
        raise ValueError(
            f"checkpoint does not match a {data['actor']!r} policy for {train_env}: {e}"
        ) from e
    if env is not None:
        target = make_env(env, disable_env_checker=True)
        agent.bind(morphology_from_env(target))
        target.close()
    agent.eval()
    return agent


@torch.no_grad()
def evaluate(
    agent: ActorCritic,
    env: str,
    episodes: int = 10,
    seed: int = 12345,
    deterministic: bool = True,
    num_threads: int | None = None,
    max_steps: int | None = None,
) -> dict[str, float]:
    """Run ``episodes`` episodes in parallel (one per env) with mean actions if ``deterministic``.

    ``max_steps`` caps every episode (default: the env's own 1000-step limit).
    Returns ``{"return_mean", "return_std", "length_mean", "episodes"}`` (returns are undiscounted).
    """
    probe = make_env(env, disable_env_checker=True)
    agent.bind(morphology_from_env(probe))
    probe.close()
    venv = ThreadedVectorEnv(
        [lambda: make_env(env, disable_env_checker=True)] * episodes, num_threads
    )
    obs, _ = venv.reset(seed=seed)
    low, high = venv.single_action_space.low, venv.single_action_space.high
    rets, lens = np.zeros(episodes), np.zeros(episodes, np.int64)
    alive = np.ones(episodes, bool)
    gen = torch.Generator().manual_seed(seed)
    while alive.any():
        o = agent.normalize(torch.as_tensor(obs))
        dist = agent.dist(o)
        act = (
            dist.mean
            if deterministic
            else dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=gen)
        )
        obs, rew, term, trunc, _ = venv.step(np.clip(act.numpy().astype(np.float64), low, high))
        rets += rew * alive
        lens += alive
        alive &= ~(term | trunc)
        if max_steps is not None and lens.max() >= max_steps:
            break
    venv.close()
    return {
        "return_mean": float(rets.mean()),
        "return_std": float(rets.std()),
        "length_mean": float(lens.mean()),
        "episodes": episodes,
    }


def transfer(
    ckpt: str | Path, targets: list[str], episodes: int = 10, seed: int = 12345
) -> list[dict[str, Any]]:
    """Zero-shot evaluation of one checkpoint on several envs (e.g. Centipede-8, -12, -20)."""
    data = torch.load(ckpt, map_location="cpu", weights_only=False)
    rows = []
    for t in targets:
        agent = load_policy(data, t)
        rows.append({"env": t, **evaluate(agent, t, episodes, seed)})
    return rows
