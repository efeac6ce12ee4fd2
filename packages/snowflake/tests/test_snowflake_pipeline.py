import numpy as np
import pytest

import snowflake as sf
from snowflake._pipeline import EnvGroups


def test_env_groups_equal_one_threaded_env_with_state_roundtrip():
    # Two groups of 2 envs behave exactly like one ThreadedVectorEnv of 4 (seeds, autoreset,
    # final observations), also when stepped group by group in the background.
    groups = EnvGroups("Centipede-4", 4, groups=2, num_threads=2)
    ref = sf.make_vector_env("Centipede-4", 4, "thread", 1)
    a, _ = groups.reset(seed=5)
    b, _ = ref.reset(seed=5)
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (50, 4, sf.num_actuators(4)))
    resets = 0
    for t, act in enumerate(acts):
        if t % 2:  # background stepping, one group after the other
            for g, sl in enumerate(groups.slices):
                groups.step_async(g, act[sl])
            parts = [groups.step_wait(g) for g in range(2)]
            oa, ra, ta, ua = (np.concatenate([p[i] for p in parts]) for i in range(4))
            ia = None
        else:
            oa, ra, ta, ua, ia = groups.step(act)
        ob, rb, tb, ub, ib = ref.step(act)
        for x, y in ((oa, ob), (ra, rb), (ta, tb), (ua, ub)):
            np.testing.assert_array_equal(x, y)
        if ia is not None and (tb | ub).any():
            resets += 1
            for i in np.nonzero(tb | ub)[0]:
                np.testing.assert_array_equal(ia["final_obs"][i], ib["final_obs"][i])
    assert resets > 0  # random actions end Centipede-4 episodes within 50 steps
    state = groups.get_state()
    after = [groups.step(act)[0] for act in acts[:5]]
    groups.set_state(state)
    again = [groups.step(act)[0] for act in acts[:5]]
    for x, y in zip(after, again):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="multiple of groups"):
        EnvGroups("Centipede-4", 3, groups=2)
    groups.close()
    ref.close()


@pytest.mark.parametrize(
    "vector",
    ["thread", pytest.param("process", marks=pytest.mark.slow)],  # process: ~10-40 s
)
def test_pipelined_rollout_is_a_valid_rollout(tiny_cfg, vector):
    # pipeline=2: the actions of one group are computed while the other group steps (threads,
    # or worker processes). Replaying the stored actions through a fresh vector env must
    # reproduce every episode (return and length), i.e. each env got the action computed for
    # its own current observation.
    cfg = tiny_cfg("snowflake", updates=1, num_envs=4, num_threads=2, pipeline=2, vector=vector)
    tr = sf.Trainer(cfg)
    batch = tr.collect()
    assert batch["obs"].shape == (cfg.rollout_steps, tr.morph.obs_dim)
    acts = batch["actions"].numpy().reshape(cfg.rollout_steps // 4, 4, -1)
    low, high = tr.envs.single_action_space.low, tr.envs.single_action_space.high
    ref = sf.make_vector_env(cfg.env, 4, "thread", 1)
    ref.reset(seed=cfg.seed)
    ret, length, episodes = np.zeros(4), np.zeros(4, int), []
    for a in acts:
        _, r, te, tu, _ = ref.step(np.clip(a.astype(np.float64), low, high))
        ret += r
        length += 1
        for i in np.nonzero(te | tu)[0]:
            episodes.append((ret[i], length[i]))
            ret[i], length[i] = 0.0, 0
    ref.close()
    assert len(episodes) > 0  # 16 steps per env end some early Centipede-6 episodes
    got = sorted((round(r, 9), n) for r, n, _ in tr.episodes)
    assert got == sorted((round(r, 9), int(n)) for r, n in episodes)
    np.testing.assert_array_equal(tr.ep_len, length)
    tr.close()


def test_pipelined_training_resumes_identically(tiny_cfg, tmp_path):
    cfg = tiny_cfg("mlp", updates=3, num_envs=4, num_threads=2, pipeline=2, checkpoint_every=1)
    full = sf.Trainer(cfg, tmp_path / "full")
    rows = full.train(progress=False)
    full.close()
    part = sf.Trainer(cfg, tmp_path / "part")
    part.train(progress=False, max_updates=1)
    part.close()
    resumed = sf.Trainer.resume(tmp_path / "part")
    rest = resumed.train(progress=False)
    resumed.close()
    assert [r["approx_kl"] for r in rows[1:]] == [r["approx_kl"] for r in rest]
    assert all(r["time/env"] > 0 for r in rows)
