"""Gymnasium registration of ``Centipede-{n}-v0`` (n = 3…100) and a forgiving ``make_env``."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym

MIN_N, MAX_N = 3, 100
MUJOCO_V5 = ("Ant", "HalfCheetah", "Hopper", "Walker2d", "Humanoid", "Swimmer")
_CENTIPEDE = re.compile(r"^Centipede-(\d+)(-v0)?$")


def register_centipedes() -> None:
    """Register ``Centipede-{n}-v0`` for n = 3…100 (idempotent; 1000-step time limit)."""
    for n in range(MIN_N, MAX_N + 1):
        env_id = f"Centipede-{n}-v0"
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="snowflake._centipede_env:CentipedeEnv",
            kwargs={"n": n},
            max_episode_steps=1000,
        )


def canonical_env_id(name: str) -> str:
    """Map ``"Centipede-20"`` → ``"Centipede-20-v0"``, ``"Ant"`` → ``"Ant-v5"``; validate the name.

    Raises:
        ValueError: unknown environment name or Centipede size outside 3…100.
    """
    if not isinstance(name, str):
        raise TypeError(f"env name must be a str, got {type(name).__name__}.")
    m = _CENTIPEDE.match(name)
    if m:
        n = int(m.group(1))
        if not MIN_N <= n <= MAX_N:
            raise ValueError(
                f"Centipede size must be in {MIN_N}…{MAX_N}, got {name!r}; "
                "for other sizes build the "
                "env directly: snowflake.CentipedeEnv(n=...)."
            )
        return f"Centipede-{n}-v0"
    if name in MUJOCO_V5:
        return f"{name}-v5"
    register_centipedes()
    if name in gym.registry:
        return name
    raise ValueError(
        f"Unknown environment {name!r}. Use 'Centipede-<n>' (n = {MIN_N}…{MAX_N}), a MuJoCo v5 "
        f"name ({', '.join(m + '-v5' for m in MUJOCO_V5)}) or any registered gymnasium id."
    )


def centipede_size(name: str) -> int | None:
    """Return ``n`` for a Centipede env name, else ``None``."""
    m = _CENTIPEDE.match(name)
    return int(m.group(1)) if m else None


def make_env(name: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` with name normalisation (see :func:`canonical_env_id`)."""
    return gym.make(canonical_env_id(name), **kwargs)
