"""Vector env over worker processes, each stepping its share of envs with one thread.

Threads share one GIL: at 16 threads each env step's few GIL round trips (around ``mj_step``,
``mj_rnePostConstraint`` and the numpy copies) queue up, and Centipede-6 stops near 17k steps/s
on 16 cores while 16 independent one-thread processes reach 27k (H200 box, 2026-11-30). Here
every worker process runs a single-threaded :class:`ThreadedVectorEnv` over a contiguous block
of envs; actions, observations, rewards and flags travel through shared memory and one pipe
message per worker and step signals the work (gymnasium's ``AsyncVectorEnv`` instead uses one
process and one message per env).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from ._vector import concat_states, split_state


def _views(bufs: dict, k: int, d: int, nu: int) -> dict[str, np.ndarray]:
    return {
        "act": np.frombuffer(bufs["act"], np.float64).reshape(k, nu),
        "obs": np.frombuffer(bufs["obs"], np.float64).reshape(k, d),
        "fin": np.frombuffer(bufs["fin"], np.float64).reshape(k, d),
        "rew": np.frombuffer(bufs["rew"], np.float64),
        "flags": np.frombuffer(bufs["flags"], np.uint8).reshape(k, 2),
    }


def _worker(env: str, lo: int, hi: int, bufs: dict, shape: tuple, conn, env_kwargs: dict) -> None:
    """Worker loop: own ``ThreadedVectorEnv`` of envs ``lo:hi`` on one thread."""
    from ._registry import make_env
    from ._vector import ThreadedVectorEnv

    k, d, nu = shape
    v = _views(bufs, k, d, nu)
    venv = ThreadedVectorEnv(
        [lambda: make_env(env, disable_env_checker=True, **env_kwargs)] * (hi - lo), 1
    )
    try:
        while True:
            cmd, arg = conn.recv()
            try:
                if cmd == "step":
                    obs, rew, term, trunc, info = venv.step(v["act"][lo:hi])
                    v["obs"][lo:hi], v["rew"][lo:hi] = obs, rew
                    v["flags"][lo:hi, 0], v["flags"][lo:hi, 1] = term, trunc
                    for i in np.nonzero(term | trunc)[0]:
                        v["fin"][lo + i] = info["final_obs"][i]
                    conn.send(None)
                elif cmd == "reset":
                    v["obs"][lo:hi] = venv.reset(seed=arg)[0]
                    conn.send(None)
                elif cmd == "get_state":
                    conn.send(venv.get_state())
                elif cmd == "set_state":
                    venv.set_state(arg)
                    conn.send(None)
                elif cmd == "close":
                    conn.send(None)
                    break
            except Exception as e:  # handed to the parent
                conn.send(e)
    finally:
        venv.close()
        conn.close()


class ProcessVectorEnv(VectorEnv):
    """``num_envs`` envs split into ``procs`` contiguous blocks, each stepped by its own worker
    process with a one-thread :class:`ThreadedVectorEnv` (``SAME_STEP`` autoreset,
    ``info["final_obs"]``). Results equal a :class:`ThreadedVectorEnv` of all envs bit for bit;
    :meth:`get_state`/:meth:`set_state` cover every env. Workers are started with ``spawn`` (a
    few seconds: each imports this package).

    ``groups`` > 1 splits the envs into that many equal groups (``slices[g]``), each with its own
    ``procs // groups`` workers, which :meth:`step_async` / :meth:`step_wait` step separately:
    the caller computes one group's actions while the other groups' workers run the physics
    (double buffering for two groups, as EnvPool's asynchronous mode does). Unlike threaded env
    groups, the caller's work here shares no GIL with the physics.
    """

    def __init__(
        self,
        env: str,
        num_envs: int,
        procs: int | None = None,
        groups: int = 1,
        **env_kwargs: Any,
    ) -> None:
        from ._registry import make_env

        avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if groups < 1 or num_envs % groups:
            raise ValueError(
                f"num_envs ({num_envs}) must be a positive multiple of groups ({groups}); "
                "choose e.g. groups=2 with an even number of envs."
            )
        procs = max(groups, min(num_envs, procs or avail or 1))
        probe = make_env(env, disable_env_checker=True, **env_kwargs)
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.metadata = dict(probe.metadata)
        self.metadata["autoreset_mode"] = gym.vector.AutoresetMode.SAME_STEP
        self.spec = probe.spec
        probe.close()
        self.render_mode = None
        self.num_envs = num_envs
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        d = self.single_observation_space.shape[0]
        nu = self.single_action_space.shape[0]
        ctx = mp.get_context("spawn")
        bufs = {
            "act": ctx.RawArray("d", num_envs * nu),
            "obs": ctx.RawArray("d", num_envs * d),
            "fin": ctx.RawArray("d", num_envs * d),
            "rew": ctx.RawArray("d", num_envs),
            "flags": ctx.RawArray("B", num_envs * 2),
        }
        self._v = _views(bufs, num_envs, d, nu)
        size = num_envs // groups
        self.slices = [slice(g * size, (g + 1) * size) for g in range(groups)]
        per = procs // groups  # workers per group; a block never spans two groups
        self.blocks, self._group_workers = [], []
        for sl in self.slices:
            bounds = np.linspace(sl.start, sl.stop, per + 1).astype(int)
            first = len(self.blocks)
            self.blocks += [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
            self._group_workers.append(range(first, len(self.blocks)))
        self._conns, self._procs = [], []
        for lo, hi in self.blocks:
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=_worker,
                args=(env, lo, hi, bufs, (num_envs, d, nu), child, env_kwargs),
                daemon=True,
            )
            p.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(p)
        self._closed = False

    def _all(self, cmd: str, args: list | None = None) -> list:
        for i, c in enumerate(self._conns):
            c.send((cmd, None if args is None else args[i]))
        out = [c.recv() for c in self._conns]
        for r in out:
            if isinstance(r, BaseException):
                raise r
        return out

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, int):
            seeds: list = [[seed + i for i in range(lo, hi)] for lo, hi in self.blocks]
        elif seed is None:
            seeds = [None] * len(self.blocks)
        else:
            seeds = [list(seed)[lo:hi] for lo, hi in self.blocks]
        self._all("reset", seeds)
        return self._v["obs"].copy(), {}

    def step_async(self, g: int, actions: np.ndarray) -> None:
        """Start stepping group ``g`` (envs ``slices[g]``) with ``actions`` ``[size, nu]``; its
        worker processes run while the caller works."""
        self._v["act"][self.slices[g]] = actions
        for w in self._group_workers[g]:
            self._conns[w].send(("step", None))

    def step_wait(self, g: int):
        """Wait for group ``g``'s step; returns its ``(obs, rew, term, trunc, info)`` (env indices
        relative to the group; ``info["final_obs"]`` for envs that finished)."""
        err = None
        for w in self._group_workers[g]:
            r = self._conns[w].recv()
            if isinstance(r, BaseException):
                err = r
        if err is not None:
            raise err
        return self._result(self.slices[g])

    def _result(self, sl: slice):
        obs = self._v["obs"][sl].copy()
        flags = self._v["flags"][sl].astype(bool)
        term, trunc = flags[:, 0].copy(), flags[:, 1].copy()
        done = term | trunc
        infos: dict[str, Any] = {}
        if done.any():
            final = np.full(done.size, None, dtype=object)
            for i in np.nonzero(done)[0]:
                final[i] = self._v["fin"][sl.start + i].copy()
            infos["final_obs"], infos["_final_obs"] = final, done
        return obs, self._v["rew"][sl].copy(), term, trunc, infos

    def step(self, actions: np.ndarray):
        self._v["act"][:] = actions
        self._all("step")
        return self._result(slice(0, self.num_envs))

    def get_state(self) -> dict[str, Any]:
        """:meth:`ThreadedVectorEnv.get_state` of every block, concatenated over envs."""
        return concat_states(self._all("get_state"))

    def set_state(self, state: dict[str, Any]) -> None:
        slices = [slice(lo, hi) for lo, hi in self.blocks]
        self._all("set_state", split_state(state, self.num_envs, slices))

    def close_extras(self, **kwargs: Any) -> None:
        if self._closed:
            return
        self._closed = True
        for c in self._conns:
            try:
                c.send(("close", None))
                c.recv()
            except (OSError, EOFError):
                pass
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
