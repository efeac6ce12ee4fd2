import numpy as np
import pytest

import snowflake as sf


def test_process_vector_env_equals_threaded_with_state_roundtrip():
    # Two worker processes (one thread each, shared memory) behave exactly like one threaded
    # vector env of all envs: seeds, autoreset with final observations, state restore.
    proc = sf.make_vector_env("Centipede-4", 4, "process", 2)
    ref = sf.make_vector_env("Centipede-4", 4, "thread", 1)
    try:
        a, _ = proc.reset(seed=9)
        b, _ = ref.reset(seed=9)
        np.testing.assert_array_equal(a, b)
        rng = np.random.default_rng(0)
        acts = rng.uniform(-1, 1, (40, 4, sf.num_actuators(4)))
        resets = 0
        for act in acts:
            oa, ra, ta, ua, ia = proc.step(act)
            ob, rb, tb, ub, ib = ref.step(act)
            for x, y in ((oa, ob), (ra, rb), (ta, tb), (ua, ub)):
                np.testing.assert_array_equal(x, y)
            for i in np.nonzero(tb | ub)[0]:
                resets += 1
                np.testing.assert_array_equal(ia["final_obs"][i], ib["final_obs"][i])
        assert resets > 0  # random actions end Centipede-4 episodes within 40 steps
        state = proc.get_state()
        first = [proc.step(act)[0] for act in acts[:4]]
        proc.set_state(state)
        again = [proc.step(act)[0] for act in acts[:4]]
        for x, y in zip(first, again):
            np.testing.assert_array_equal(x, y)
        with pytest.raises(ValueError, match="envs"):
            proc.set_state({**state, "physics": state["physics"][:1]})
    finally:
        proc.close()
        ref.close()


def test_process_env_groups_step_in_the_background_like_one_env():
    # groups=2: each half of the envs has its own worker; stepping the halves one after the
    # other (step_async/step_wait) equals stepping all envs of a threaded env at once.
    proc = sf.ProcessVectorEnv("Centipede-4", 4, procs=2, groups=2)
    ref = sf.make_vector_env("Centipede-4", 4, "thread", 1)
    try:
        assert proc.slices == [slice(0, 2), slice(2, 4)]
        assert proc.blocks == [(0, 2), (2, 4)]
        np.testing.assert_array_equal(proc.reset(seed=4)[0], ref.reset(seed=4)[0])
        rng = np.random.default_rng(1)
        resets = 0
        for act in rng.uniform(-1, 1, (40, 4, sf.num_actuators(4))):
            for g, sl in enumerate(proc.slices):
                proc.step_async(g, act[sl])
            parts = [proc.step_wait(g) for g in (1, 0)]  # any order
            ob, rb, tb, ub, ib = ref.step(act)
            for i, y in enumerate((ob, rb, tb, ub)):
                np.testing.assert_array_equal(np.concatenate([parts[1][i], parts[0][i]]), y)
            for sl, part in zip(proc.slices, parts[::-1]):
                for i in np.nonzero(part[2] | part[3])[0]:
                    resets += 1
                    np.testing.assert_array_equal(part[4]["final_obs"][i], ib["final_obs"][sl][i])
        assert resets > 0  # random actions end Centipede-4 episodes within 40 steps
        with pytest.raises(ValueError, match="multiple of groups"):
            sf.ProcessVectorEnv("Centipede-4", 3, procs=2, groups=2)
    finally:
        proc.close()
        ref.close()
