"""Env groups stepped in turn, so that one group's policy call overlaps the others' physics.

A PPO rollout alternates a policy call (on the calling thread or a GPU) and a vector-env step
(physics on worker threads); run one after the other, the policy time adds to every step. With
the envs split into groups that each have their own threads, the calling thread computes the
actions of group g while the physics of the other groups runs ("double buffering" for two
groups). Every env still gets the action of the current policy for its current observation, so
the samples are the same PPO samples; only the order of random draws differs.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from ._vector import ThreadedVectorEnv, concat_states, make_vector_env, split_state


class _Driver:
    """One background thread that runs the callables handed to it, one at a time, in order."""

    def __init__(self) -> None:
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (fn := self._todo.get()) is not None:
            try:
                self._done.put((True, fn()))
            except BaseException as e:  # handed to the caller of result()
                self._done.put((False, e))

    def submit(self, fn) -> None:
        self._todo.put(fn)

    def result(self) -> Any:
        ok, value = self._done.get()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self._todo.put(None)
        self._thread.join()


class EnvGroups(VectorEnv):
    """``num_envs`` envs as ``groups`` equal :class:`ThreadedVectorEnv` groups, each with its own
    ``num_threads // groups`` stepping threads and a driver thread, so that a group can step in
    the background (:meth:`step_async` / :meth:`step_wait`) while the caller works.

    As a whole it is an ordinary vector env (``SAME_STEP`` autoreset, ``info["final_obs"]``):
    :meth:`step` steps all groups at once, :meth:`reset` seeds env ``i`` with ``seed + i`` as
    :class:`ThreadedVectorEnv` does, and :meth:`get_state`/:meth:`set_state` cover every env, so
    results equal a single :class:`ThreadedVectorEnv` of all envs bit for bit.
    ``slices[g]`` are the env indices of group ``g``.
    """

    def __init__(
        self, env: str, num_envs: int, groups: int = 2, num_threads: int | None = None
    ) -> None:
        if groups < 1 or num_envs % groups:
            raise ValueError(
                f"num_envs ({num_envs}) must be a positive multiple of groups ({groups}); "
                "choose e.g. groups=2 with an even number of envs."
            )
        size = num_envs // groups
        avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        nt = min(size, max(1, (num_threads or avail or 1) // groups))
        self.groups = [make_vector_env(env, size, "thread", nt) for _ in range(groups)]
        self.slices = [slice(g * size, (g + 1) * size) for g in range(groups)]
        g0 = self.groups[0]
        self.num_envs = num_envs
        self.single_observation_space = g0.single_observation_space
        self.single_action_space = g0.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = dict(g0.metadata)
        self.metadata["autoreset_mode"] = gym.vector.AutoresetMode.SAME_STEP
        self.spec = g0.spec
        self.render_mode = None
        self._drivers = [_Driver() for _ in range(groups)]

    def step_async(self, g: int, actions: np.ndarray) -> None:
        """Start stepping group ``g`` with ``actions`` ``[size, nu]`` in the background."""
        grp = self.groups[g]
        acts = np.array(actions, dtype=np.float64)  # a copy: the caller may reuse its buffer
        self._drivers[g].submit(lambda: grp.step(acts))

    def step_wait(self, g: int):
        """Wait for group ``g``'s step; returns its ``(obs, rew, term, trunc, info)``."""
        return self._drivers[g].result()

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        obs = []
        for sl, grp in zip(self.slices, self.groups):
            if isinstance(seed, int):
                s: Any = [seed + i for i in range(sl.start, sl.stop)]
            else:
                s = None if seed is None else list(seed)[sl]
            obs.append(grp.reset(seed=s, options=options)[0])
        return np.concatenate(obs), {}

    def step(self, actions: np.ndarray):
        for g, sl in enumerate(self.slices):
            self.step_async(g, actions[sl])
        parts = [self.step_wait(g) for g in range(len(self.groups))]
        obs, rew, term, trunc = (np.concatenate([p[i] for p in parts]) for i in range(4))
        infos: dict[str, Any] = {}
        done = term | trunc
        if done.any():
            final = np.full(self.num_envs, None, dtype=object)
            for sl, p in zip(self.slices, parts):
                if "final_obs" in p[4]:
                    final[sl] = p[4]["final_obs"]
            infos["final_obs"], infos["_final_obs"] = final, done
        return obs, rew, term, trunc, infos

    def get_state(self) -> dict[str, Any]:
        """:meth:`ThreadedVectorEnv.get_state` of every group, concatenated over envs."""
        return concat_states([grp.get_state() for grp in self.groups])

    def set_state(self, state: dict[str, Any]) -> None:
        for grp, part in zip(self.groups, split_state(state, self.num_envs, self.slices)):
            grp.set_state(part)

    def close_extras(self, **kwargs: Any) -> None:
        for d in self._drivers:
            d.close()
        for grp in self.groups:
            grp.close()


def _stateful() -> tuple[type, ...]:
    from ._procvec import ProcessVectorEnv

    return (ThreadedVectorEnv, EnvGroups, ProcessVectorEnv)


STATEFUL = _stateful()  # vector envs whose state goes into checkpoints
