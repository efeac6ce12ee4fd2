import numpy as np
import pytest
import torch

import snowflake as sf


def test_process_vector_env_equals_threaded_with_state_roundtrip():
    # Two worker processes (one thread each, shared memory) behave exactly like one threaded
    # vector env of all envs: seeds, autoreset with final observations, state restore. With
    # groups=2 each half has its own worker and can be stepped in the background
    # (step_async/step_wait, here on odd steps and waited for in reverse order).
    proc = sf.ProcessVectorEnv("Centipede-4", 4, procs=2, groups=2)
    ref = sf.make_vector_env("Centipede-4", 4, "thread", 1)
    try:
        assert proc.slices == [slice(0, 2), slice(2, 4)]
        assert proc.blocks == [(0, 2), (2, 4)]
        a, _ = proc.reset(seed=9)
        b, _ = ref.reset(seed=9)
        np.testing.assert_array_equal(a, b)
        rng = np.random.default_rng(0)
        acts = rng.uniform(-1, 1, (40, 4, sf.num_actuators(4)))
        resets = 0
        for t, act in enumerate(acts):
            ob, rb, tb, ub, ib = ref.step(act)
            if t % 2:
                for g, sl in enumerate(proc.slices):
                    proc.step_async(g, act[sl])
                parts = [proc.step_wait(g) for g in (1, 0)][::-1]
                oa, ra, ta, ua = (np.concatenate([p[i] for p in parts]) for i in range(4))
                fin = {
                    sl.start + i: f
                    for sl, p in zip(proc.slices, parts)
                    for i, f in enumerate(p[4].get("final_obs", []))
                    if f is not None
                }
            else:
                oa, ra, ta, ua, ia = proc.step(act)
                fin = {i: ia["final_obs"][i] for i in np.nonzero(ta | ua)[0]}
            for x, y in ((oa, ob), (ra, rb), (ta, tb), (ua, ub)):
                np.testing.assert_array_equal(x, y)
            assert sorted(fin) == list(np.nonzero(tb | ub)[0])
            for i in np.nonzero(tb | ub)[0]:
                resets += 1
                np.testing.assert_array_equal(fin[i], ib["final_obs"][i])
        assert resets > 0  # random actions end Centipede-4 episodes within 40 steps
        state = proc.get_state()
        first = [proc.step(act)[0] for act in acts[:4]]
        proc.set_state(state)
        again = [proc.step(act)[0] for act in acts[:4]]
        for x, y in zip(first, again):
            np.testing.assert_array_equal(x, y)
        with pytest.raises(ValueError, match="envs"):
            proc.set_state({**state, "physics": state["physics"][:1]})
        with pytest.raises(ValueError, match="multiple of groups"):
            sf.ProcessVectorEnv("Centipede-4", 3, procs=2, groups=2)
    finally:
        proc.close()
        ref.close()


@pytest.mark.slow  # two trainers, one with spawned worker processes (~10-30 s)
def test_overlapped_process_rollout_equals_threaded(tiny_cfg):
    # With worker processes the rollout sends step t + 1's actions before doing step t's
    # bookkeeping and buffer stores (they run while the workers step). Everything must equal
    # the synchronous threaded rollout bit for bit: batch, episode lengths, reward and
    # observation statistics, next observations.
    trs = [
        sf.Trainer(tiny_cfg("snowflake", updates=1, num_envs=2, vector=v, num_threads=n))
        for v, n in (("thread", 1), ("process", 2))
    ]
    try:
        batches = []
        for tr in trs:  # the global torch RNG draws the actions: same start for both
            torch.manual_seed(0)
            batches.append(tr.collect())
        for k, v in batches[0].items():
            assert torch.equal(v, batches[1][k]), k
        ref, got = trs
        # episode returns: float64 sums of rewards that the threaded env and a worker process
        # compute in numpy batches of other shapes, equal to the last bit or two (1e-12 rel.)
        assert [e[1:] for e in ref.episodes] == [e[1:] for e in got.episodes]
        assert [e[0] for e in got.episodes] == pytest.approx([e[0] for e in ref.episodes], 1e-12)
        assert len(ref.episodes) > 0  # some episodes ended: autoreset and final values covered
        np.testing.assert_array_equal(ref.ret_rms, got.ret_rms)
        np.testing.assert_array_equal(ref.next_obs, got.next_obs)
        for k in ("mean", "var", "count"):
            assert torch.equal(getattr(ref.agent.normalizer, k), getattr(got.agent.normalizer, k))
        assert got.phase_s["env"] > 0
    finally:
        for tr in trs:
            tr.close()
