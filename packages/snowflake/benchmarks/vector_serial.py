"""Serial (GIL-held) CPU time per env step of ``ThreadedVectorEnv``, measured on one thread.

Everything a vector step does outside MuJoCo's GIL-releasing calls (``mj_step``,
``mj_rnePostConstraint``, ``mj_forward`` in resets) runs under the GIL, i.e. one thread at a
time; by Amdahl's law it bounds the speed-up on many cores: with a serial share s, N threads give
at most 1 / (s + (1 − s) / N). CPU time of the calling thread (``time.thread_time``) is used, so
other processes on a shared box do not inflate it. Uniform random actions (frequent resets).

    python packages/snowflake/benchmarks/vector_serial.py [--steps 40] [--reps 3]
"""

from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np

import snowflake as sf

_ACC = [0.0]


def _timed(fn):
    def call(*a, **k):
        t = time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            _ACC[0] += time.thread_time() - t

    return call


def measure(env: str, num_envs: int, steps: int, seed: int = 0) -> dict[str, float]:
    """``{"total_us", "serial_us", "serial_frac", "resets_per_step", "amdahl_16"}`` per env
    step (µs of CPU), one thread."""
    v = sf.make_vector_env(env, num_envs, "thread", 1)
    v.reset(seed=seed)
    rng = np.random.default_rng(seed)
    low, high = v.single_action_space.low, v.single_action_space.high
    acts = rng.uniform(low, high, size=(steps + 10, num_envs, low.size))
    for t in range(10):
        v.step(acts[t])
    _ACC[0], dones = 0.0, 0
    t0 = time.thread_time()
    for t in range(10, steps + 10):
        _, _, te, tr, _ = v.step(acts[t])
        dones += int((te | tr).sum())
    total = time.thread_time() - t0
    v.close()
    k = steps * num_envs
    frac = (total - _ACC[0]) / total
    return {
        "total_us": total / k * 1e6,
        "serial_us": (total - _ACC[0]) / k * 1e6,
        "serial_frac": frac,
        "resets_per_step": dones / k,
        "amdahl_16": 1.0 / (frac + (1.0 - frac) / 16),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    for name in ("mj_step", "mj_rnePostConstraint", "mj_forward"):
        setattr(mujoco, name, _timed(getattr(mujoco, name)))
    for env, n in (("Centipede-20", 64), ("Centipede-6", 128)):
        rows = [measure(env, n, a.steps, seed=r) for r in range(a.reps)]
        med = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
        print(
            f"{env} x {n} envs: {med['total_us']:.0f} us CPU per env step, serial "
            f"{med['serial_us']:.1f} us ({med['serial_frac']:.2%}; 16-thread Amdahl bound "
            f"{med['amdahl_16']:.1f}x), resets per env step {med['resets_per_step']:.3f}"
        )


if __name__ == "__main__":
    main()
