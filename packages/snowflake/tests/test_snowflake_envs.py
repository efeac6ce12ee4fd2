import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import snowflake as sf
from snowflake._centipede_env import centipede_healthy


@pytest.mark.parametrize("n", [3, 4, 5, 6, 20, 50])
def test_dims_follow_formulas(n):
    model = mujoco.MjModel.from_xml_string(sf.centipede_xml(n))
    nu = 2 * n + 2 * (math.ceil(n / 2) - 1)
    assert model.nu == nu == sf.num_actuators(n)
    assert model.nq == 7 + nu
    assert model.nv == 6 + nu
    assert model.nbody == 1 + math.ceil(n / 2) + 2 * n
    if n in (6, 20):
        env = gym.make(f"Centipede-{n}-v0")
        assert env.observation_space.shape == ({6: 139, 20: 433}[n],)
        assert env.action_space.shape == ({6: 16, 20: 58}[n],)
        env.close()
    assert sf.obs_dim(n) == (model.nq - 2) + model.nv + 6 * model.nbody


def test_rk4_timestep_frame_skip():
    env = gym.make("Centipede-6-v0")
    m = env.unwrapped.model
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    assert m.opt.timestep == pytest.approx(0.01)
    assert env.unwrapped.dt == pytest.approx(0.05)
    assert env.spec.max_episode_steps == 1000


def test_reward_is_sum_of_terms_and_cfrc_nonzero():
    env = gym.make("Centipede-6-v0")
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(50):
        obs, r, term, _trunc, info = env.step(env.action_space.sample())
        total = (
            info["reward_forward"]
            + info["reward_ctrl"]
            + info["reward_contact"]
            + info["reward_survive"]
        )
        assert r == pytest.approx(total, abs=1e-12)
        if term:
            obs, _ = env.reset()
    # Regression for contact forces staying zero without mj_rnePostConstraint (openai/gym#1541).
    assert np.abs(env.unwrapped.data.cfrc_ext).sum() > 0
    assert np.abs(obs[-6 * env.unwrapped.model.nbody :]).sum() > 0
    env.close()


def test_termination_on_torso_height():
    env = gym.make("Centipede-6-v0")
    env.reset(seed=0)
    base = env.unwrapped
    qpos = base.data.qpos.copy()
    qpos[2] = 0.1  # torso centre below the 0.35 m healthy bound
    base.set_state(qpos, base.data.qvel.copy())
    _, _, term, _, _ = env.step(np.zeros(16, np.float32))
    assert term
    env.close()


def test_healthy_rules():
    ok = np.array([[[0, 0, 0.7], [0.5, 0.1, 0.7]]])
    assert centipede_healthy(ok, np.array([True]))[0]
    drift = np.array([[[0, 0, 0.7], [0.5, 0.5, 0.7]]])  # |Δy| = 0.5 ≥ 0.45
    assert not centipede_healthy(drift, np.array([True]))[0]
    high = np.array([[[0, 0, 1.2], [0.5, 0.0, 0.7]]])
    assert not centipede_healthy(high, np.array([True]))[0]
    assert not centipede_healthy(ok, np.array([False]))[0]


# The checker warns (not errors) that an unbounded Box is "probably too low/high"; gymnasium's own
# MuJoCo envs declare the same (-inf, inf) observation bounds, so the advice does not apply.
@pytest.mark.filterwarnings("ignore:.*Box observation space m(in|ax)imum value is:UserWarning")
@pytest.mark.parametrize("n", [6, 20])
def test_gymnasium_env_checker(n):
    env = gym.make(f"Centipede-{n}-v0")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_bad_input():
    with pytest.raises(ValueError, match=">= 3"):
        sf.centipede_xml(2)
    with pytest.raises(TypeError):
        sf.centipede_xml(6.0)
    with pytest.raises(ValueError, match="integrator"):
        sf.centipede_xml(6, integrator="leapfrog")
    with pytest.raises(ValueError, match="3…100"):
        sf.make_env("Centipede-101")
    with pytest.raises(ValueError, match="Unknown environment"):
        sf.make_env("Centipod-6")


def test_all_sizes_registered():
    ids = [f"Centipede-{n}-v0" for n in range(3, 101)]
    assert all(i in gym.registry for i in ids)
    assert sf.canonical_env_id("Centipede-7") == "Centipede-7-v0"
    assert sf.canonical_env_id("Ant") == "Ant-v5"
