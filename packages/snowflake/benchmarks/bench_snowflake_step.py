"""Vector-env stepping: snowflake's threaded batched stepper vs gymnasium's AsyncVectorEnv."""

from __future__ import annotations

import os

import numpy as np
from monobench import Measure, case

import snowflake as sf


@case(
    "centipede_vector_step",
    params=[{"env": "Centipede-20", "num_envs": 16}, {"env": "Centipede-6", "num_envs": 16}],
    quick_params=[{"env": "Centipede-6", "num_envs": 4}],
    devices=("cpu",),
)
def bench_vector_step(env: str, num_envs: int, device: str) -> Measure:
    cores = len(os.sched_getaffinity(0))
    fast = sf.make_vector_env(env, num_envs, "thread", min(cores, num_envs))
    ref = sf.make_vector_env(env, num_envs, "async")
    fast.reset(seed=0)
    ref.reset(seed=0)
    act = np.random.default_rng(0).uniform(
        -1, 1, (num_envs, sf.num_actuators(int(env.split("-")[1])))
    )

    def check() -> None:
        a = sf.make_vector_env(env, 2, "thread", 2)
        b = sf.make_vector_env(env, 2, "sync")
        oa, _ = a.reset(seed=1)
        ob, _ = b.reset(seed=1)
        for _ in range(5):
            oa, ra, *_ = a.step(act[:2])
            ob, rb, *_ = b.step(act[:2])
        if not (np.array_equal(oa, ob) and np.array_equal(ra, rb)):
            raise AssertionError("threaded stepper disagrees with SyncVectorEnv")

    return Measure(
        candidate=lambda: fast.step(act),
        baseline=lambda: ref.step(act),
        candidate_label=f"thread x{min(cores, num_envs)}",
        baseline_label="gymnasium AsyncVectorEnv",
        extra={"num_envs": num_envs, "cores": cores},
        check=check,
        warmup=5,
        repeats=30,
    )
