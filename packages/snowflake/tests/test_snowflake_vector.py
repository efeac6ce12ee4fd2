import gymnasium as gym
import numpy as np
import pytest

import snowflake as sf


@pytest.mark.parametrize("threads", [1, 2])
def test_threaded_equals_sync_with_autoreset(threads):
    fast = sf.make_vector_env("Centipede-4", 3, "thread", threads)
    ref = sf.make_vector_env("Centipede-4", 3, "sync")
    a, _ = fast.reset(seed=11)
    b, _ = ref.reset(seed=11)
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(0)
    resets = 0
    for _ in range(60):
        act = rng.uniform(-1, 1, (3, sf.num_actuators(4)))
        oa, ra, ta, ua, ia = fast.step(act)
        ob, rb, tb, ub, ib = ref.step(act)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(ua, ub)
        if (ta | ua).any():
            resets += 1
            for i in np.nonzero(ta | ua)[0]:
                np.testing.assert_array_equal(ia["final_obs"][i], ib["final_obs"][i])
    assert resets > 0  # random actions end Centipede episodes within 60 steps
    fast.close()
    ref.close()


def test_generic_env_path_and_state():
    v = sf.make_vector_env("Walker2d-v5", 2, "thread", 2)
    _obs, _ = v.reset(seed=0)
    st = v.get_state()
    rng = np.random.default_rng(1)
    acts = [rng.uniform(-1, 1, (2, 6)) for _ in range(5)]
    first = [v.step(a)[0] for a in acts]
    v.set_state(st)
    second = [v.step(a)[0] for a in acts]
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
    assert v.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    v.close()


def test_threaded_truncation_matches_sync():
    # A 7-step time limit: truncation and the reset on the worker threads must match gymnasium.
    fast = sf.make_vector_env("Centipede-6", 4, "thread", 2, max_episode_steps=7)
    ref = sf.make_vector_env("Centipede-6", 4, "sync", max_episode_steps=7)
    np.testing.assert_array_equal(fast.reset(seed=5)[0], ref.reset(seed=5)[0])
    act = np.zeros((4, sf.num_actuators(6)))  # zero action: episodes outlive 7 steps
    truncs = 0
    for _ in range(16):
        oa, ra, ta, ua, ia = fast.step(act)
        ob, rb, tb, ub, ib = ref.step(act)
        for x, y in ((oa, ob), (ra, rb), (ta, tb), (ua, ub)):
            np.testing.assert_array_equal(x, y)
        truncs += int(ua.sum())
        for i in np.nonzero(ua)[0]:
            np.testing.assert_array_equal(ia["final_obs"][i], ib["final_obs"][i])
    assert truncs >= 4
    fast.close()
    ref.close()


def test_generic_env_autoreset_matches_sync():
    # Hopper-v5 falls within a few dozen random steps: resets run on the worker threads.
    fast = sf.make_vector_env("Hopper-v5", 3, "thread", 2)
    ref = sf.make_vector_env("Hopper-v5", 3, "sync")
    np.testing.assert_array_equal(fast.reset(seed=2)[0], ref.reset(seed=2)[0])
    rng = np.random.default_rng(3)
    dones = 0
    for _ in range(80):
        act = rng.uniform(-1, 1, (3, 3))
        oa, ra, ta, ua, ia = fast.step(act)
        ob, rb, tb, ub, ib = ref.step(act)
        for x, y in ((oa, ob), (ra, rb), (ta, tb), (ua, ub)):
            np.testing.assert_array_equal(x, y)
        for i in np.nonzero(ta | ua)[0]:
            dones += 1
            np.testing.assert_array_equal(ia["final_obs"][i], ib["final_obs"][i])
    assert dones > 0
    fast.close()
    ref.close()


def test_worker_threads_run_everything_and_reraise():
    from snowflake._vector import _Workers

    w = _Workers(3)
    seen = []
    w.run(lambda: seen.append(1))  # 3 workers + the calling thread
    assert len(seen) == 4

    def boom():
        raise RuntimeError("in a worker")

    with pytest.raises(RuntimeError, match="in a worker"):
        w.run(boom)
    w.run(lambda: seen.append(2))  # still usable after an error: all threads reported back
    assert seen.count(2) == 4
    w.close()
    assert not any(t.is_alive() for t in w._threads)


def test_many_threads_chunks_cover_all_envs():
    # 7 envs on 3 threads: 3 chunks pulled dynamically; equal to the one-thread stepper.
    fast = sf.make_vector_env("Centipede-4", 7, "thread", 3)
    one = sf.make_vector_env("Centipede-4", 7, "thread", 1)
    np.testing.assert_array_equal(fast.reset(seed=4)[0], one.reset(seed=4)[0])
    rng = np.random.default_rng(5)
    for _ in range(25):
        act = rng.uniform(-1, 1, (7, sf.num_actuators(4)))
        for x, y in zip(fast.step(act)[:4], one.step(act)[:4]):
            np.testing.assert_array_equal(x, y)
    fast.close()
    one.close()


def test_dropped_vector_env_ends_its_threads():
    import gc

    v = sf.make_vector_env("Centipede-4", 4, "thread", 3)
    threads = list(v._pool._threads)
    del v
    gc.collect()
    for t in threads:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in threads)
