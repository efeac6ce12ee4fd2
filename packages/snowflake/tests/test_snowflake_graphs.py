import math

import pytest
import torch

import snowflake as sf
from snowflake._graphs import GraphedPPOStep, set_lr


def test_set_lr_keeps_tensor_storage():
    p = torch.nn.Parameter(torch.zeros(3))
    lr = torch.tensor(1e-3)
    opt = torch.optim.Adam([p], lr=lr)
    set_lr(opt, 2e-4)
    assert opt.param_groups[0]["lr"] is lr  # same tensor: a captured graph reads it
    assert float(lr) == pytest.approx(2e-4)
    plain = torch.optim.Adam([p], lr=1e-3)
    set_lr(plain, 5e-4)
    assert plain.param_groups[0]["lr"] == 5e-4


def test_try_capture_reports_empty_error_on_success():
    # Trainer.graph_error / policy_graph_error are "" unless a capture failed (None would read
    # as "never attempted" to callers that compare with "").
    from snowflake._trainer import _try_capture

    assert _try_capture(lambda: 42, "x") == (42, "")

    def fail():
        raise RuntimeError("no capture here")

    with pytest.warns(RuntimeWarning, match="no capture here"):
        obj, err = _try_capture(fail, "x")
    assert obj is None
    assert "no capture here" in err


def test_graphed_step_rejects_cpu_batch(tiny_cfg):
    tr = sf.Trainer(tiny_cfg("mlp", updates=1))
    assert not tr.use_graph  # CPU: eager minibatch steps
    batch = tr.collect()
    with pytest.raises(ValueError, match="CUDA"):
        GraphedPPOStep(tr.agent, tr.opt_pi, tr.opt_v, tr.cfg, batch)
    tr.close()


@pytest.mark.gpu
@pytest.mark.parametrize("policy", ["mlp", "snowflake"])
def test_graphed_update_matches_eager_on_cuda(tiny_cfg, policy):
    # Same seed, same rollout (the graphed policy runs the same kernels), same minibatch order:
    # the graphed update must move the weights like the eager one. Capturable Adam orders its
    # float32 arithmetic differently, so the weights agree to rounding: 1e-5 absolute after one
    # update of 2 epochs x 2 minibatches (steps of ~lr = 3e-4 per weight). One update only: a
    # second rollout would amplify those roundings through the chaotic physics.
    states, rows = [], []
    for graph in (False, True):
        tr = sf.Trainer(tiny_cfg(policy, updates=1, device="cuda", cuda_graph=graph))
        torch.manual_seed(0)
        rows.append([tr.step()])
        assert (tr._graphed is not None) == graph, tr.graph_error
        states.append({k: v.detach().cpu() for k, v in tr.agent.state_dict().items()})
        tr.close()
    for k, v in states[0].items():
        assert torch.allclose(v, states[1][k], rtol=0, atol=1e-5), k
    for a, b in zip(*rows):
        assert a["approx_kl"] == pytest.approx(b["approx_kl"], rel=1e-3, abs=1e-7)


@pytest.mark.gpu
def test_gpu_rollout_copy_keeps_cpu_normalizer(tiny_cfg):
    # rollout_device="cuda" next to device="cuda": a separate rollout copy whose normaliser runs
    # on the CPU; after an update both normalisers hold the same statistics.
    tr = sf.Trainer(tiny_cfg("snowflake", updates=2, device="cuda", rollout_device="cuda"))
    assert tr.roll_agent is not tr.agent
    assert tr.roll_agent.normalizer.mean.device.type == "cpu"
    rows = [tr.step() for _ in range(2)]
    assert tr._graphed_policy is not None, tr.policy_graph_error
    assert all(r["rollout_env_s"] > 0 and r["approx_kl"] == r["approx_kl"] for r in rows)
    for k in ("mean", "var", "count"):
        a = getattr(tr.agent.normalizer, k).cpu()
        assert torch.equal(a, getattr(tr.roll_agent.normalizer, k)), k
    tr.close()


@pytest.mark.gpu
def test_graphed_policy_to_host_equals_call():
    # to_host: pinned, asynchronous copies around the same replay; the same numbers as the
    # outputs of __call__ copied back (bit for bit: same kernels, plain copies).
    import mujoco

    from snowflake._graphs import GraphedPolicy

    m = sf.build_morphology(mujoco.MjModel.from_xml_string(sf.centipede_xml(6)))
    torch.manual_seed(0)
    agent = sf.ActorCritic(m, "gnn").cuda()
    agent.bind(m)
    g = GraphedPolicy(agent, 4)
    for _ in range(2):
        x = torch.randn(4, m.obs_dim)
        ref = torch.cat([t.clone() for t in (*g(x.cuda())[:2], g.value[:, None])], 1).cpu()
        got = g.to_host(x)
        assert got.shape == (4, 2 * len(m.act_node) + 1)
        assert torch.equal(got, ref)


@pytest.mark.gpu
def test_gnn_cuda_schedule_matches_per_type_on_cuda():
    # On CUDA the GNN runs all node types in one baddbmm and the GRU gates as one fused kernel;
    # it must match the per-type nn.Linear / nn.GRUCell schedule (forward and gradients) on the
    # same device. float32 with TF32 off: ~1e-6 absolute on O(1) values.
    import mujoco

    torch.backends.cuda.matmul.allow_tf32 = False
    m = sf.build_morphology(mujoco.MjModel.from_xml_string(sf.centipede_xml(7)))
    torch.manual_seed(2)
    agent = sf.ActorCritic(m, "gnn").cuda()
    agent.bind(m)
    x = torch.randn(8, m.obs_dim, device="cuda")
    out = {}
    for mode in (False, True):
        agent.actor.batched_types = mode
        agent.zero_grad(set_to_none=True)
        mean, _ = agent.actor(x)
        mean.sum().backward()
        grads = {k: p.grad.cpu() for k, p in agent.actor.named_parameters() if p.grad is not None}
        out[mode] = (mean.detach().cpu(), grads)
    assert float((out[True][0] - out[False][0]).abs().max()) <= 1e-5
    for k, g in out[False][1].items():
        assert torch.allclose(out[True][1][k], g, rtol=1e-4, atol=1e-5), k


@pytest.mark.slow
# inductor's advice to enable TF32 (we keep float32 matmuls on purpose)
@pytest.mark.filterwarnings("ignore:TensorFloat32 tensor cores:UserWarning")
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_compiled_losses_match_eager(device):
    # PPOConfig(compile=True) compiles minibatch_losses (forward + loss, hence its backward).
    # Same maths: loss and diagnostics to float32 rounding (1e-5 on O(1) values), gradients
    # to 1e-6 (they are O(1e-2) here). Batched node-type schedule, as used on CUDA. (Weights
    # after Adam steps are no good test of this: Adam's first steps move every weight by about
    # ±lr whatever the gradient's size, so a rounding-level sign change of a near-zero gradient
    # moves a weight by 2·lr.)
    from snowflake._ppo import minibatch_losses
    from snowflake._trainer import build_agent

    torch.backends.cuda.matmul.allow_tf32 = False
    agent, _, morph = build_agent("Centipede-6", "snowflake")
    agent.to(device)
    agent.bind(morph)
    agent.actor.batched_types = True
    n, d, a = 64, morph.obs_dim, len(morph.act_node)
    g = torch.Generator().manual_seed(0)
    data = {
        "obs": torch.randn(n, d, generator=g),
        "actions": torch.randn(n, a, generator=g),
        "logp": torch.randn(n, generator=g),
        "advantages": torch.randn(n, generator=g),
        "returns": torch.randn(n, generator=g),
        "mean": 0.1 * torch.randn(n, a, generator=g),
        "std": torch.full((n, a), 0.4),
    }
    mb = torch.randperm(n, generator=g)[:32]
    params = [p for p in agent.parameters() if p.requires_grad]
    data = {k: v.to(device) for k, v in data.items()}
    mb = mb.to(device)
    out = []
    for fn in (minibatch_losses, torch.compile(minibatch_losses, dynamic=False)):
        loss, row = fn(agent, mb, data, 0.1, 0.0)
        out.append((loss.detach(), row, torch.autograd.grad(loss, params)))
    assert torch.allclose(out[0][0], out[1][0], atol=1e-5)
    assert torch.allclose(out[0][1], out[1][1], atol=1e-5)
    for x, y in zip(out[0][2], out[1][2]):
        assert torch.allclose(x, y, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.slow
def test_split_graphed_update_matches_eager_on_cuda(tiny_cfg):
    # split_streams=True: the critic's half and the actor's diagnostics of the captured step run
    # on other streams; the operations are the joint step's (a CPU test checks bit equality),
    # so after one update the weights agree with eager steps to rounding (1e-5 absolute, as in
    # the graphed test above).
    states = []
    for kw in ({"cuda_graph": False}, {"split_streams": True}):
        tr = sf.Trainer(tiny_cfg("snowflake", updates=1, device="cuda", **kw))
        torch.manual_seed(0)
        tr.step()
        assert tr.graph_error == "", tr.graph_error  # "" = captured, or eager by choice
        # the split run really replays a captured split-stream step (not an eager fallback)
        split = kw.get("split_streams", False)
        assert (tr._graphed is not None) == split
        assert split is False or tr._graphed.split is not None
        states.append({k: v.detach().cpu() for k, v in tr.agent.state_dict().items()})
        tr.close()
    for k, v in states[0].items():
        assert torch.allclose(v, states[1][k], rtol=0, atol=1e-5), k


@pytest.mark.gpu
@pytest.mark.slow
# inductor's advice to enable TF32 (we keep float32 matmuls on purpose)
@pytest.mark.filterwarnings("ignore:TensorFloat32 tensor cores:UserWarning")
def test_compiled_graphed_update_runs_on_cuda(tiny_cfg):
    # compile=True builds the compiled, captured step (no fallback) and trains: finite
    # diagnostics and moved weights. Its numerics are checked by test_compiled_losses_match_eager.
    tr = sf.Trainer(tiny_cfg("snowflake", updates=1, device="cuda", compile=True))
    before = {k: v.detach().clone() for k, v in tr.agent.state_dict().items()}
    row = tr.step()
    assert tr._graphed is not None, tr.graph_error
    assert tr.compile_error == "", tr.compile_error
    assert math.isfinite(row["approx_kl"])
    assert math.isfinite(row["value_loss"])
    assert any(not torch.equal(v, tr.agent.state_dict()[k]) for k, v in before.items())
    tr.close()
