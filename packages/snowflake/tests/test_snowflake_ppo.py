import csv
import math

import numpy as np
import pytest
import torch

import snowflake as sf


def test_gae_hand_computed():
    # γ = 0.9, λ = 0.8 (γλ = 0.72); truncation at t = 1 (bootstraps from V(final) = 2.0),
    # termination at t = 3 (its next value 7.0 must be ignored).
    r = torch.ones(5, 1)
    v = torch.tensor([[0.5], [0.4], [0.3], [0.2], [0.1]])
    nv = torch.tensor([[0.4], [2.0], [0.2], [7.0], [0.6]])
    term = torch.tensor([[0], [0], [0], [1], [0]], dtype=torch.bool)
    trunc = torch.tensor([[0], [1], [0], [0], [0]], dtype=torch.bool)
    adv, ret = sf.compute_gae(r, v, nv, term, trunc, 0.9, 0.8)
    # By hand: δ4 = 1 + .9·.6 − .1 = 1.44; δ3 = 1 − .2 = .8;
    # δ2 = 1 + .9·.2 − .3 = .88 → A2 = .88 + .72·.8;
    # δ1 = 1 + .9·2 − .4 = 2.4; δ0 = 1 + .9·.4 − .5 = .86 → A0 = .86 + .72·2.4.
    expected = torch.tensor([[2.588], [2.4], [1.456], [0.8], [1.44]])
    # float32 arithmetic on O(1) values: 1e-6 absolute is a few ulp.
    assert torch.allclose(adv, expected, rtol=0, atol=1e-6)
    assert torch.allclose(ret, expected + v, rtol=0, atol=1e-6)


def test_gae_equals_step_by_step_loop():
    # compute_gae vectorises δ and the decay and runs the recursion in numpy; the float32
    # operations are those of the plain loop below, so the results are bit-equal.
    g = torch.Generator().manual_seed(0)
    t_len, b = 37, 5
    r, v, nv = (torch.randn(t_len, b, generator=g) for _ in range(3))
    term = torch.rand(t_len, b, generator=g) < 0.1
    trunc = (torch.rand(t_len, b, generator=g) < 0.1) & ~term
    adv, ret = sf.compute_gae(r, v, nv, term, trunc, 0.99, 0.95)
    ref = torch.zeros_like(r)
    last = torch.zeros(b)
    for t in reversed(range(t_len)):
        delta = r[t] + 0.99 * nv[t] * (1.0 - term[t].float()) - v[t]
        last = delta + 0.99 * 0.95 * (1.0 - (term[t] | trunc[t]).float()) * last
        ref[t] = last
    assert adv.dtype == torch.float32
    assert torch.equal(adv, ref)
    assert torch.equal(ret, ref + v)


def _snapshot(agent):
    return {n: p.detach().clone() for n, p in agent.named_parameters()}


@pytest.mark.parametrize("policy", ["snowflake", "nervenet"])
def test_freezing_after_three_updates(tiny_cfg, policy):
    tr = sf.Trainer(tiny_cfg(policy, updates=3))
    init = _snapshot(tr.agent)
    rows = tr.train(progress=False)
    assert len(rows) == 3
    frozen = set(sf.FreezeSpec.preset(policy).frozen)
    for name, p in tr.agent.named_parameters():
        group = tr.agent.param_group(name)
        if group in frozen:
            assert torch.equal(p, init[name]), name
            assert not p.requires_grad
        else:
            assert not torch.equal(p, init[name]), name
    in_opt = {id(p) for opt in (tr.opt_pi, tr.opt_v) for g in opt.param_groups for p in g["params"]}
    for name, p in tr.agent.named_parameters():
        assert (id(p) in in_opt) == (tr.agent.param_group(name) not in frozen)
    assert rows[0]["clip_frac_first"] == 0.0  # ratio is exactly 1 on the first minibatch
    for g in frozen:
        assert rows[-1][f"update_norm/{g}"] == 0.0
    tr.close()


def test_checkpoint_roundtrip(tiny_cfg, tmp_path):
    tr = sf.Trainer(tiny_cfg("snowflake", updates=1), tmp_path)
    tr.train(progress=False)
    tr.close()
    ckpt = torch.load(tmp_path / "final.pt", weights_only=False)
    tr2 = sf.Trainer(tiny_cfg("snowflake", updates=1))
    tr2.load_state_dict(ckpt)
    for (n, a), b in zip(tr.agent.state_dict().items(), tr2.agent.state_dict().values()):
        assert torch.equal(a, b), n
    assert tr2.opt_pi.state_dict()["state"].keys() == tr.opt_pi.state_dict()["state"].keys()
    tr2.close()
    bad = sf.Trainer(tiny_cfg("mlp", updates=1))
    with pytest.raises(ValueError, match="policy='snowflake'"):
        bad.load_state_dict(ckpt)
    bad.close()


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resume_equals_uninterrupted(tiny_cfg, tmp_path):
    cfg = tiny_cfg("snowflake", updates=4, checkpoint_every=2, num_threads=2)
    full = sf.Trainer(cfg, tmp_path / "full")
    full.train(progress=False)
    full.close()
    part = sf.Trainer(cfg, tmp_path / "part")
    part.train(progress=False, max_updates=2)  # checkpoint at update 2
    saved = (tmp_path / "part" / "ckpt_last.pt").read_bytes()
    part.train(progress=False, max_updates=1)  # row 3 logged ...
    part.close()
    (tmp_path / "part" / "ckpt_last.pt").write_bytes(
        saved
    )  # ... then "killed" before its checkpoint
    resumed = sf.Trainer.resume(tmp_path / "part")
    assert resumed.update_idx == 2
    resumed.train(progress=False)
    resumed.close()
    for (n, a), b in zip(full.agent.state_dict().items(), resumed.agent.state_dict().values()):
        assert torch.equal(a, b), n
    ra, rb = _rows(tmp_path / "full" / "metrics.csv"), _rows(tmp_path / "part" / "metrics.csv")
    assert [r["update"] for r in rb] == ["1", "2", "3", "4"]
    for x, y in zip(ra, rb):
        assert x["ep_return_mean"] == y["ep_return_mean"]
        assert x["approx_kl"] == y["approx_kl"]


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        sf.PPOConfig(num_envs=3)
    cfg = sf.PPOConfig.preset("cleanrl", num_envs=2, total_steps=8192)
    assert cfg.clip == 0.2
    assert cfg.rollout_steps == 4096
    assert cfg.minibatch_size == 128
    with pytest.raises(ValueError, match="unknown config keys"):
        sf.PPOConfig.preset("snowflake", batch=3)


def test_rollout_uses_one_torch_thread_and_restores(tiny_cfg):
    tr = sf.Trainer(tiny_cfg("mlp", updates=1))
    seen = []
    make = tr.agent.rollout_fn

    def spy_make():
        run = make()

        def spy(obs):
            seen.append(torch.get_num_threads())
            return run(obs)

        return spy

    tr.agent.rollout_fn = spy_make
    torch.set_num_threads(2)
    tr.collect()
    tr.close()
    assert seen
    assert set(seen) == {1}  # inference during the rollout: one intra-op thread
    assert torch.get_num_threads() == 2  # the caller's setting is restored for the update


def test_reward_scaling_uses_running_std_of_discounted_return(tiny_cfg):
    tr = sf.Trainer(tiny_cfg("mlp", num_envs=2))
    rng = np.random.default_rng(0)
    g, ret, seen = tr.cfg.gamma, np.zeros(2), []
    for t in range(300):
        rew = rng.normal(1.0, 2.0, 2)
        done = np.array([t % 37 == 36, t % 51 == 50])
        scaled = tr._scale_reward(rew, done)
        ret = ret * g + rew
        seen.extend(ret)
        ret[done] = 0.0
        # Same statistic computed directly over every discounted return seen so far. The running
        # merge starts from a pseudo-count of 1e-4 (mean 0, var 1), a relative bias of about
        # 1e-4 / len(seen) · (1 + mean²/var): rtol 1e-5 once 20 returns are in.
        if len(seen) >= 20:
            np.testing.assert_allclose(scaled, rew / np.sqrt(np.var(seen) + 1e-8), rtol=1e-5)
    raw = sf.Trainer(tiny_cfg("mlp", num_envs=2, norm_reward=False))
    np.testing.assert_array_equal(raw._scale_reward(rew, done), rew)
    tr.close()
    raw.close()


@pytest.mark.parametrize("policy", ["mlp", "nervenet"])
def test_divergence_diagnostics_match_closed_form(tiny_cfg, policy):
    tr = sf.Trainer(tiny_cfg(policy, updates=2))
    batch = tr.collect()
    # The stored rollout distribution is the current policy's on the stored (normalised) obs.
    with torch.no_grad():
        d = tr.agent.dist(batch["obs"])
    # Same weights and inputs; batched vs per-step float32 forward: 1e-5 covers reduction order.
    assert torch.allclose(d.loc, batch["mean"], rtol=0, atol=1e-5)
    assert torch.allclose(d.scale, batch["std"], rtol=0, atol=1e-6)
    # One epoch, one minibatch: evaluated before the step, so π = π_old exactly.
    one = sf.PPOConfig(**{**tr.cfg.to_dict(), "epochs": 1, "minibatch_size": 64})
    diag = sf.ppo_update(tr.agent, tr.opt_pi, tr.opt_v, batch, one)
    assert abs(diag["kl_exact"]) < 1e-6  # float32 rounding of a zero KL
    assert diag["clip_frac_active"] == 0.0
    # After that step, several epochs: the closed-form KL equals torch's and is positive.
    many = sf.PPOConfig(**{**tr.cfg.to_dict(), "epochs": 4, "minibatch_size": 32})
    diag = sf.ppo_update(tr.agent, tr.opt_pi, tr.opt_v, batch, many)
    assert diag["kl_exact"] > 0
    assert 0.0 <= diag["clip_frac_active"] <= diag["clip_frac"] <= 1.0  # active ⊆ all clipped
    # Now π ≠ π_old: a full-batch minibatch is evaluated before its step, so the reported
    # closed form must equal torch's Gaussian KL(π_old ‖ π) of the current weights.
    with torch.no_grad():
        new = tr.agent.dist(batch["obs"])
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(batch["mean"], batch["std"]), new
    )
    # The whole-update divergence of the 4-epoch update is that same KL(π_old ‖ π_new), and its
    # sample estimator / clip share follow from the ratios of the stored actions.
    assert diag["kl_update"] == pytest.approx(float(ref.sum(-1).mean()), rel=1e-3)
    log_r = new.log_prob(batch["actions"]).sum(-1) - batch["logp"]
    r = log_r.exp()
    assert diag["approx_kl_update"] == pytest.approx(float(((r - 1) - log_r).mean()), rel=1e-3)
    assert diag["clip_frac_update"] == pytest.approx(float(((r - 1).abs() > 0.1).float().mean()))
    assert diag["kl_update"] > 0
    diag = sf.ppo_update(tr.agent, tr.opt_pi, tr.opt_v, batch, one)
    # float32: each dimension's KL is a difference of O(1) terms (ε ≈ 6e-8 each) summed over
    # nu dims, against a KL of ~1e-2, and torch uses another formula: 1e-3 relative.
    assert diag["kl_exact"] == pytest.approx(float(ref.sum(-1).mean()), rel=1e-3)
    tr.close()


@pytest.mark.parametrize("policy", ["mlp", "snowflake"])
def test_separate_rollout_copy_trains_identically(tiny_cfg, policy):
    # rollout_device set → rollouts run on a copy of the model that is refreshed after every
    # update; on one device that must change nothing, bit for bit.
    runs = []
    for extra in ({}, {"rollout_device": "cpu"}):
        tr = sf.Trainer(tiny_cfg(policy, updates=3, **extra))
        assert (tr.roll_agent is tr.agent) == (not extra)
        rows = tr.train(progress=False)
        runs.append((rows, tr.agent.state_dict(), tr.roll_agent.state_dict()))
        tr.close()
    (rows_a, sd_a, _), (rows_b, sd_b, roll_b) = runs
    assert [r["approx_kl"] for r in rows_a] == [r["approx_kl"] for r in rows_b]
    assert [r["ep_return_mean"] for r in rows_a] == [r["ep_return_mean"] for r in rows_b]
    for k in sd_a:  # weights and normaliser statistics, and the copy is up to date
        assert torch.equal(sd_a[k], sd_b[k]), k
        assert torch.equal(sd_b[k], roll_b[k]), k


@pytest.mark.parametrize("policy", ["mlp", "snowflake"])
def test_rollout_fn_equals_dist_and_value(tiny_cfg, policy):
    # The rollout's per-step path skips module and distribution layers: same numbers, bit for bit.
    tr = sf.Trainer(tiny_cfg(policy, updates=1))
    obs = torch.randn(5, tr.morph.obs_dim)
    with torch.no_grad():
        mean, std, value = tr.agent.rollout_fn()(obs)
        d = tr.agent.dist(obs)
        assert torch.equal(mean, d.loc)
        assert torch.equal(std, d.scale)
        assert torch.equal(value, tr.agent.value(obs))
        torch.manual_seed(1)
        a = mean + std * torch.randn(mean.shape)
        torch.manual_seed(1)
        assert torch.equal(a, d.sample())  # the rollout's sampling = Normal.sample on a CPU
        lp = -((a - mean) ** 2) / (2 * std**2) - std.log() - math.log(math.sqrt(2 * math.pi))
        assert torch.equal(lp, d.log_prob(a))
    tr.close()


class _NoStream:
    """Stand-in for a CUDA stream on the CPU: waits and stream contexts do nothing."""

    def wait_stream(self, other) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


@pytest.mark.parametrize("policy", ["mlp", "snowflake"])
def test_split_step_equals_joint_step(tiny_cfg, policy, monkeypatch):
    # split=(actor, critic, stream, stream): the critic's backward/clip/Adam and the actor's
    # diagnostics are issued separately (on CUDA: on other streams). Actor and critic share no
    # parameters, so weights and diagnostics equal the joint step's exactly (same operations).
    from snowflake._ppo import actor_losses, critic_loss, minibatch_step

    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: _NoStream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: s)
    tr = sf.Trainer(tiny_cfg(policy, updates=1))
    batch = tr.collect()
    init = {k: v.clone() for k, v in tr.agent.state_dict().items()}
    pi = [p for g in tr.opt_pi.param_groups for p in g["params"]]
    v = [p for g in tr.opt_v.param_groups for p in g["params"]]
    opt_state = (tr.opt_pi.state_dict(), tr.opt_v.state_dict())
    out = []
    for split in (None, (actor_losses, critic_loss, _NoStream(), _NoStream())):
        tr.agent.load_state_dict(init)
        tr.opt_pi.load_state_dict(opt_state[0])
        tr.opt_v.load_state_dict(opt_state[1])
        rows = []
        for s in (0, 32):
            tr.opt_pi.zero_grad(set_to_none=True)
            tr.opt_v.zero_grad(set_to_none=True)
            mb = torch.arange(s, s + 32)
            rows.append(
                minibatch_step(tr.agent, tr.opt_pi, tr.opt_v, pi, v, mb, batch, tr.cfg, split=split)
            )
        out.append(({k: x.clone() for k, x in tr.agent.state_dict().items()}, rows))
    assert out[0][1][0].shape == (7,)
    for a, b in zip(out[0][1], out[1][1]):
        assert torch.equal(a, b)
    changed = 0
    for k, x in out[0][0].items():
        assert torch.equal(x, out[1][0][k]), k
        changed += int(not torch.equal(x, init[k]))
    assert changed > 0
    tr.close()
