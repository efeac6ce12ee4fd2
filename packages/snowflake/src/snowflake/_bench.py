"""Environment-stepping throughput (steps/s) for single envs and vector-env backends."""

from __future__ import annotations

import time

import numpy as np

from ._registry import make_env
from ._vector import make_vector_env


def bench_env(
    env: str,
    num_envs: int = 1,
    kind: str = "single",
    seconds: float = 5.0,
    num_threads: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Measure env steps per second with uniform random actions.

    ``kind``: ``"single"`` (one env, one process, ``num_envs`` ignored), ``"thread"``
    (:class:`ThreadedVectorEnv`), ``"sync"`` or ``"async"`` (gymnasium vector envs).
    Returns ``{"steps_per_s", "steps", "seconds", "num_envs"}``; a 0.5 s warm-up is excluded.
    """
    rng = np.random.default_rng(seed)
    if kind == "single":
        e = make_env(env, disable_env_checker=True)
        e.reset(seed=seed)
        low, high = e.action_space.low, e.action_space.high

        def step() -> int:
            _, _, term, trunc, _ = e.step(rng.uniform(low, high))
            if term or trunc:
                e.reset()
            return 1

        close, n = e.close, 1
    else:
        v = make_vector_env(env, num_envs, kind, num_threads)
        v.reset(seed=seed)
        low, high = v.single_action_space.low, v.single_action_space.high

        def step() -> int:
            v.step(rng.uniform(low, high, size=(num_envs, low.size)))
            return num_envs

        close, n = v.close, num_envs
    t_end = time.perf_counter() + 0.5
    while time.perf_counter() < t_end:
        step()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        steps += step()
    dt = time.perf_counter() - t0
    close()
    return {"steps_per_s": steps / dt, "steps": steps, "seconds": dt, "num_envs": n}
