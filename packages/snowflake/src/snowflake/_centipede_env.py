"""Centipede-n as a gymnasium MuJoCo env (NerveNet/Snowflake observation, reward, termination)."""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco import MujocoEnv

from ._centipede_xml import centipede_xml, num_torsos

HEALTHY_Z = (0.35, 1.15)  # m, open interval for every torso centre height
MAX_DY = 0.45  # m, largest allowed |Δy| between neighbouring torsos
FRAME_SKIP = 5


def centipede_obs(qpos: np.ndarray, qvel: np.ndarray, cfrc_ext: np.ndarray) -> np.ndarray:
    """Flat observation ``qpos[2:] ‖ qvel ‖ clip(cfrc_ext, −1, 1)`` for a batch.

    Shapes: ``qpos [B, nq]``, ``qvel [B, nv]``, ``cfrc_ext [B, nbody, 6]`` → ``[B, obs_dim]``
    float64.
    """
    b = qpos.shape[0]
    return np.concatenate([qpos[:, 2:], qvel, np.clip(cfrc_ext, -1.0, 1.0).reshape(b, -1)], axis=1)


def centipede_healthy(torso_xpos: np.ndarray, state_finite: np.ndarray) -> np.ndarray:
    """Healthy mask ``[B]`` (bool) from torso centres ``[B, T, 3]`` (m) and a finiteness mask
    ``[B]``.

    Unhealthy if any torso height leaves (0.35, 1.15) or two neighbouring torsos differ in y by
    ≥ 0.45 m, or the state is not finite.
    """
    # ndarray methods rather than np.all/np.diff: this runs under the GIL on every vector step.
    # A NaN makes min/max NaN and every comparison False, i.e. unhealthy, as elementwise tests do.
    z, y = torso_xpos[..., 2], torso_xpos[..., 1]
    ok = z.min(-1) > HEALTHY_Z[0]
    ok &= z.max(-1) < HEALTHY_Z[1]
    ok &= np.abs(y[..., 1:] - y[..., :-1]).max(-1) < MAX_DY
    ok &= state_finite
    return ok


def centipede_reward_terms(
    x_before: np.ndarray,
    x_after: np.ndarray,
    action: np.ndarray,
    obs_cfrc: np.ndarray,
    n: int,
    dt: float,
) -> dict[str, np.ndarray]:
    """Reward terms ``[B]`` each: forward speed of the last torso (m/s) minus control and contact
    costs scaled by 4/n, plus an alive bonus of 1; ``reward`` is their sum."""
    scale = 4.0 / n
    forward = (x_after - x_before) / dt
    ctrl = -0.5 * scale * np.sum(np.square(action), axis=-1)
    contact = -0.5e-3 * scale * np.sum(np.square(obs_cfrc), axis=-1)
    survive = np.ones_like(forward)
    return {
        "reward_forward": forward,
        "reward_ctrl": ctrl,
        "reward_contact": contact,
        "reward_survive": survive,
        "reward": forward + ctrl + contact + survive,
    }


class CentipedeEnv(MujocoEnv):
    """Centipede-``n`` locomotion (NerveNet, Wang et al. 2018; Snowflake, Blake et al. 2021, §5).

    Observation ``float64 [obs_dim]`` = ``qpos[2:] ‖ qvel ‖ clip(cfrc_ext, −1, 1)`` over all bodies
    (world included); contact forces come from ``mujoco.mj_rnePostConstraint`` after each step.
    Action ``float32 [nu]`` in [−1, 1]. Control step 0.05 s (timestep 0.01 s, frame skip 5).
    Reward = forward x-velocity of the last torso − 0.5·(4/n)·‖a‖² − 0.5e-3·(4/n)·‖clip(cfrc)‖² + 1.
    Terminates when a torso height leaves (0.35, 1.15) m, neighbouring torsos drift ≥ 0.45 m
    apart in y, or the state is not finite. Episodes are truncated at 1000 steps by the
    registered ``TimeLimit``.
    """

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 20}  # noqa: RUF012

    def __init__(
        self,
        n: int = 6,
        integrator: str = "RK4",
        reset_noise_scale: float = 0.1,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
        **kwargs: Any,
    ) -> None:
        self.n = int(n)
        self._xml = centipede_xml(self.n, integrator=integrator)
        self.reset_noise_scale = float(reset_noise_scale)
        # MujocoEnv requires an existing path; the model itself is compiled from the string below.
        super().__init__(
            __file__,
            FRAME_SKIP,
            observation_space=None,
            render_mode=render_mode,
            width=width,
            height=height,
            camera_name="track",
            **kwargs,
        )
        self.num_torsos = num_torsos(self.n)
        self.torso_ids = np.array(
            [
                mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, f"torso_{i}")
                for i in range(self.num_torsos)
            ]
        )
        self.body_joint_qpos = np.array(
            [
                self.model.jnt_qposadr[
                    mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)
                ]
                for i in range(1, self.num_torsos)
                for name in (f"body_{i}", f"bodyupdown_{i}")
            ],
            dtype=np.int64,
        )
        self._dt = float(self.model.opt.timestep * self.frame_skip)  # s per env step
        self._name = f"Centipede-{self.n}"
        dim = (self.model.nq - 2) + self.model.nv + 6 * self.model.nbody
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float64)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = mujoco.MjModel.from_xml_string(self._xml)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _get_obs(self) -> np.ndarray:
        d = self.data
        return centipede_obs(d.qpos[None], d.qvel[None], d.cfrc_ext[None])[0]

    def _healthy(self) -> bool:
        """:func:`centipede_healthy` for this env (same tests, no batch dimension)."""
        d = self.data
        pos = d.xpos[self.torso_ids]
        z, y = pos[:, 2], pos[:, 1]
        return bool(
            z.min() > HEALTHY_Z[0]
            and z.max() < HEALTHY_Z[1]
            and np.abs(y[1:] - y[:-1]).max() < MAX_DY
            and np.isfinite(d.qpos).all()
            and np.isfinite(d.qvel).all()
        )

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        # The maths of centipede_obs / centipede_reward_terms / centipede_healthy on one env
        # (same operations in the same order, so the same bits as the batched stepper), without
        # their batch dimension, dict and array wrapping: less Python time per step.
        d, m = self.data, self.model
        last = self.torso_ids[-1]
        act = np.asarray(action)
        if act.shape != (m.nu,):
            raise ValueError(f"action has shape {act.shape}; expected ({m.nu},) for {self._name}")
        x_before = d.xpos[last, 0]
        d.ctrl[:] = act
        mujoco.mj_step(m, d, nstep=self.frame_skip)
        mujoco.mj_rnePostConstraint(m, d)
        x_after = d.xpos[last, 0]
        cfrc = np.clip(d.cfrc_ext, -1.0, 1.0).ravel()
        obs = np.concatenate((d.qpos[2:], d.qvel, cfrc))
        scale = 4.0 / self.n
        forward = (x_after - x_before) / self._dt
        ctrl = -0.5 * scale * np.square(act).sum()
        contact = -0.5e-3 * scale * np.square(cfrc).sum()
        reward = float(forward + ctrl + contact + 1.0)
        info = {
            "reward_forward": float(forward),
            "reward_ctrl": float(ctrl),
            "reward_contact": float(contact),
            "reward_survive": 1.0,
            "x_position": float(x_after),
        }
        terminated = not self._healthy()
        if self.render_mode == "human":
            self.render()
        return obs, reward, terminated, False, info

    def reset_model(self) -> np.ndarray:
        s = self.reset_noise_scale
        for _ in range(100):  # rejection-sample a healthy start (almost always the first draw)
            qpos = self.init_qpos + self.np_random.uniform(-s, s, size=self.model.nq)
            qpos[self.body_joint_qpos] = self.init_qpos[
                self.body_joint_qpos
            ] + self.np_random.uniform(
                -s / max(self.num_torsos - 1, 1),
                s / max(self.num_torsos - 1, 1),
                size=len(self.body_joint_qpos),
            )
            qvel = self.init_qvel + s * self.np_random.standard_normal(self.model.nv)
            d = self.data  # what MujocoEnv.set_state does, without its checks and copies
            d.qpos[:], d.qvel[:] = qpos, qvel
            mujoco.mj_forward(self.model, d)
            if self._healthy():
                break
        mujoco.mj_rnePostConstraint(self.model, self.data)
        return self._get_obs()

    def _get_reset_info(self) -> dict[str, float]:
        return {"x_position": float(self.data.xpos[self.torso_ids[-1], 0])}
