import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

import snowflake as sf


def _morph(n):
    return sf.build_morphology(mujoco.MjModel.from_xml_string(sf.centipede_xml(n)))


def test_gnn_param_count_independent_of_n():
    counts = {
        n: sum(p.numel() for p in sf.ActorCritic(_morph(n), "gnn").actor.parameters())
        for n in (3, 6, 20, 100)
    }
    assert len(set(counts.values())) == 1


def test_one_gnn_runs_on_6_and_100():
    torch.manual_seed(0)
    agent = sf.ActorCritic(_morph(6), "gnn")
    for n in (6, 100):
        m = _morph(n)
        agent.bind(m)
        mean, log_std = agent.actor(torch.randn(3, m.obs_dim))
        assert mean.shape == log_std.shape == (3, sf.num_actuators(n))
        assert torch.isfinite(mean).all()


def test_batched_equals_unbatched():
    torch.manual_seed(0)
    m = _morph(20)
    agent = sf.ActorCritic(m, "gnn")
    x = torch.randn(5, m.obs_dim)
    with torch.no_grad():
        batched, _ = agent.actor(x)
        single = torch.cat([agent.actor(x[i : i + 1])[0] for i in range(5)])
    # float32 GEMMs with different batch sizes may round differently; 1e-6 is ~10 ulp at |μ| ≲ 1.
    assert float((batched - single).abs().max()) <= 1e-6


def test_log_std_shared_per_actuator_type():
    m = _morph(8)
    agent = sf.ActorCritic(m, "gnn")
    with torch.no_grad():
        agent.actor.log_std.copy_(torch.arange(len(m.type_names), dtype=torch.float32))
        _, log_std = agent.actor(torch.zeros(1, m.obs_dim))
    np.testing.assert_array_equal(log_std[0].numpy(), m.act_type.astype(np.float32))


def test_mlp_actor_pads_across_sizes():
    agent = sf.ActorCritic(_morph(6), "mlp")
    m = _morph(8)
    agent.bind(m)
    mean, _ = agent.actor(torch.randn(2, m.obs_dim))
    assert mean.shape == (2, sf.num_actuators(8))


def test_normaliser_is_per_type_and_transfers():
    env = gym.make("Centipede-6-v0")
    m6 = sf.morphology_from_env(env)
    norm = sf.NodeObsNormalizer(m6.type_names, m6.feat_dim)
    norm.bind(m6)
    obs = []
    o, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(40):
        o, _, term, _, _ = env.step(env.action_space.sample())
        obs.append(o)
        if term:
            o, _ = env.reset()
    x = torch.as_tensor(np.stack(obs))
    norm.update(x[:20])
    norm.update(x[20:])
    # Two merged batches equal one pass over all data (Chan et al. parallel variance).
    ref = sf.NodeObsNormalizer(m6.type_names, m6.feat_dim)
    ref.bind(m6)
    ref.update(x)
    # float64 statistics; merging differs from one pass only by rounding (~1e-12 relative).
    assert torch.allclose(norm.mean, ref.mean, rtol=1e-9, atol=1e-12)
    assert torch.allclose(norm.var, ref.var, rtol=1e-9, atol=1e-12)
    # The root's qpos z slot is seen once per sample: its mean is the plain sample mean.
    assert float(norm.mean[0, 0]) == pytest.approx(float(x[:, 0].double().mean()), rel=1e-9)
    m20 = _morph(20)
    norm.bind(m20)
    y = norm.normalize(torch.randn(4, m20.obs_dim, dtype=torch.float64))
    assert y.shape == (4, m20.obs_dim)
    assert torch.isfinite(y).all()
    env.close()


def test_unknown_node_types_are_rejected():
    ant = gym.make("Ant-v5")
    agent = sf.ActorCritic(_morph(6), "gnn")
    with pytest.raises(ValueError, match="unknown to this model"):
        agent.bind(sf.morphology_from_env(ant))
    ant.close()


def test_freeze_presets():
    assert sf.FreezeSpec.preset("snowflake").frozen == ("encoder", "message", "decoder")
    assert sf.FreezeSpec.preset("nervenet").frozen == ()
    assert sf.FreezeSpec.preset("mlp").actor == "mlp"
    with pytest.raises(ValueError, match="unknown policy preset"):
        sf.FreezeSpec.preset("amorpheus")
    with pytest.raises(ValueError, match="unknown freeze groups"):
        sf.FreezeSpec("gnn", ("gru",))


def _gnn_reference(actor, morph, obs):
    """Node-by-node loop over the GNN equations (no batching, no type sorting), float64."""
    a = {k: v.double() for k, v in actor.state_dict().items()}
    vocab = actor.type_vocab
    types = [vocab.index(morph.type_names[t]) for t in morph.node_type]
    nbrs = {v: [int(u) for u, w in morph.edges if int(w) == v] for v in range(morph.num_nodes)}

    def lin(x, name):
        return x @ a[f"{name}.weight"].T + a[f"{name}.bias"]

    def mlp3(x, name):
        return lin(torch.tanh(lin(torch.tanh(lin(x, f"{name}.0")), f"{name}.2")), f"{name}.4")

    def gru(t, x, h):
        w_ih, w_hh = a[f"update.{t}.weight_ih"], a[f"update.{t}.weight_hh"]
        gi = x @ w_ih.T + a[f"update.{t}.bias_ih"]
        gh = h @ w_hh.T + a[f"update.{t}.bias_hh"]
        r = torch.sigmoid(gi[:64] + gh[:64])
        z = torch.sigmoid(gi[64:128] + gh[64:128])
        n = torch.tanh(gi[128:] + r * gh[128:])
        return (1 - z) * n + z * h

    out = []
    for o in obs.double():
        h = []
        for v in range(morph.num_nodes):
            idx = morph.obs_index[v]
            x = torch.zeros(actor.feat_dim, dtype=torch.float64)
            x[: len(idx)] = torch.where(torch.as_tensor(idx) >= 0, o[idx.clip(0)], 0.0)
            enc = torch.tanh(lin(x, f"encoder.{types[v]}"))
            h.append(torch.cat([a["embedding"][types[v]], enc]))
        for _ in range(actor.steps):
            msg = [mlp3(hv, "message") for hv in h]
            h = [
                gru(types[v], torch.stack([msg[u] for u in nbrs[v]]).mean(0), h[v])
                for v in range(len(h))
            ]
        out.append(torch.stack([mlp3(h[int(j)], "decoder")[0] for j in morph.act_node]))
    return torch.stack(out)


def test_gnn_matches_node_loop_reference():
    # Odd size (one-legged last torso) so every node type and the padding path are exercised.
    torch.manual_seed(1)
    m = _morph(7)
    agent = sf.ActorCritic(m, "gnn")
    x = torch.randn(3, m.obs_dim)
    with torch.no_grad():
        mean, _ = agent.actor(x)
    ref = _gnn_reference(agent.actor, m, x)
    # float32 model vs float64 loop through 4 GRU rounds of width 64: ~1e-6 relative is typical.
    assert float((mean.double() - ref).abs().max()) <= 1e-5


def test_normaliser_update_equals_node_view_reference():
    # Reference: per-type mean/var over the node-structured [B, N, F] view, built explicitly.
    m = _morph(8)
    norm = sf.NodeObsNormalizer(m.type_names, m.feat_dim)
    norm.bind(m)
    x = torch.randn(33, m.obs_dim, dtype=torch.float64) * 3 + 1
    norm.update(x)
    idx, types = torch.as_tensor(m.obs_index), torch.as_tensor(m.node_type)
    for t in range(len(m.type_names)):
        for f in range(m.feat_dim):
            cols = [int(idx[v, f]) for v in range(idx.shape[0]) if types[v] == t and idx[v, f] >= 0]
            if not cols:
                continue
            vals = x[:, cols].reshape(-1)
            # float64 sums in another order: equal to ~1e-12 relative.
            assert float(norm.mean[t, f]) == pytest.approx(float(vals.mean()), rel=1e-9, abs=1e-12)
            assert float(norm.var[t, f]) == pytest.approx(
                float(vals.var(unbiased=False)), rel=1e-9, abs=1e-12
            )
    # The cached flat statistics follow updates and state-dict loads.
    y1 = norm.normalize(x)
    norm.update(x * 2)
    assert not torch.equal(norm.normalize(x), y1)
    fresh = sf.NodeObsNormalizer(m.type_names, m.feat_dim)
    fresh.bind(m)
    fresh.normalize(x)
    fresh.load_state_dict(norm.state_dict())
    assert torch.equal(fresh.normalize(x), norm.normalize(x))


def test_normalizer_cpu_path_survives_deepcopy():
    import copy

    m = _morph(6)
    norm = sf.NodeObsNormalizer(m.type_names, m.feat_dim)
    norm.bind(m)
    x = torch.randn(8, m.obs_dim, dtype=torch.float64)
    norm.update(x)
    twin = copy.deepcopy(norm)  # its cached numpy views must follow its own buffers
    twin.update(x * 3)
    assert not torch.equal(twin.mean, norm.mean)
    ref = sf.NodeObsNormalizer(m.type_names, m.feat_dim)
    ref.bind(m)
    ref.update(x)
    ref.update(x * 3)
    assert torch.equal(twin.mean, ref.mean)
    assert torch.equal(twin.normalize(x), ref.normalize(x))


def test_normalizer_numpy_step_equals_torch_path():
    # The rollout's numpy update + normalise is the torch path's float64 arithmetic: bit-equal
    # statistics and outputs, clipping included (one outlier row among 200 lies ~sqrt(199)
    # standard deviations out: beyond the ±10 clip).
    m = _morph(6)
    a, b = (sf.NodeObsNormalizer(m.type_names, m.feat_dim) for _ in range(2))
    a.bind(m)
    b.bind(m)
    g = torch.Generator().manual_seed(1)
    for rows, scale in ((5, 1.0), (7, 3.0), (200, 1e3)):
        x = torch.randn(rows, m.obs_dim, dtype=torch.float64, generator=g)
        x[0] *= scale
        a.update(x)
        ya = a.normalize(x)
        yb = b.update_normalize_np(x.numpy())
        assert yb.dtype == torch.float32
        assert torch.equal(ya, yb)
        for k in ("mean", "var", "count"):
            assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert float(yb.abs().max()) == 10.0  # the clip was exercised


@pytest.mark.parametrize("n", [7, 20])
def test_gnn_batched_types_schedule_matches_per_type(n):
    # The schedule used on CUDA (all node types in one baddbmm, GRU from precomputed gates) is
    # the same maths as the per-type nn.Linear / nn.GRUCell schedule used on CPU; run both on
    # the CPU, forward and gradients.
    torch.manual_seed(2)
    m = _morph(n)
    agent = sf.ActorCritic(m, "gnn")
    x = torch.randn(4, m.obs_dim)
    out = {}
    for mode in (False, True):
        agent.actor.batched_types = mode
        agent.zero_grad(set_to_none=True)
        mean, _ = agent.actor(x)
        (mean * torch.linspace(-1, 1, mean.shape[1])).sum().backward()
        grads = {k: p.grad.clone() for k, p in agent.actor.named_parameters() if p.grad is not None}
        out[mode] = (mean.detach(), grads)
    # float32, summation order of the GEMMs may differ: ~1e-7 relative on O(1) values.
    assert float((out[True][0] - out[False][0]).abs().max()) <= 1e-6
    assert out[True][1].keys() == out[False][1].keys()
    assert {k.split(".")[0] for k in out[True][1]} >= {"encoder", "update", "message", "decoder"}
    for k, g in out[False][1].items():
        assert torch.allclose(out[True][1][k], g, rtol=1e-5, atol=1e-6), k
