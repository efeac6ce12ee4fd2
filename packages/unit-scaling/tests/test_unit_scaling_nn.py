"""Unit-scaled modules: initialisation, unit scale, depth containers, parameter metadata."""

import copy
import pickle

import pytest
import torch
from torch import nn

import unit_scaling.nn as unn
from unit_scaling.testing import assert_scale, unit_backward

TOL = 0.1  # as the per-op tests: samples of >= 2^12 elements, model error < 5 %


def test_init_and_isinstance():
    lin = unn.Linear(64, 32)
    assert isinstance(lin, nn.Linear)
    assert_scale(lin.weight, 1.0, 0.15)  # 2048 N(0,1) samples: std within ~3 %
    assert torch.all(lin.bias == 0)
    norm = unn.RMSNorm(16)
    assert torch.all(norm.weight == 1)
    conv = unn.Conv2d(4, 8, 3, padding=1)
    assert torch.all(conv.bias == 0)
    assert_scale(conv.weight, 1.0, 0.15)


def test_linear_module_trains():
    lin = unn.Linear(32, 8)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    before = lin.weight.detach().clone()
    lin(torch.randn(16, 32)).pow(2).mean().backward()
    opt.step()
    assert not torch.equal(before, lin.weight)


def test_readout_scale():
    ro = unn.LinearReadout(1024, 64)
    x = torch.randn(128, 1024, requires_grad=True)
    y = ro(x)
    unit_backward(y)
    assert_scale(y, 1024**-0.5, TOL)  # μP readout: output 2^-5 for fan-in 2^10
    assert_scale(x.grad, 1.0, TOL)
    assert_scale(ro.weight.grad, 1.0, TOL)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kv_heads", [4, 1])
def test_attention_module(fused, kv_heads):
    att = unn.Attention(128, 4, kv_heads, fused_qkv=fused, value_correlation=0.0)
    x = torch.randn(8, 64, 128, requires_grad=True)
    y = att(x)
    unit_backward(y)
    # a full block with real projections and RoPE: 0.25 tolerance (layer-level criterion)
    assert_scale(y, 1.0, 0.25)


def test_mlp_and_layer_scale():
    mlp = unn.MLP(128, 4)
    x = torch.randn(512, 128, requires_grad=True)
    y = mlp(x)
    unit_backward(y)
    assert_scale(y, 1.0, 0.2)
    # x feeds two unit-scaled projections (up and gate), so its gradient sums two unit terms:
    # sqrt(2) by design, keeping the block's gradient exact (mirrored up/down scales)
    assert_scale(x.grad, 2**0.5, 0.2)
    for p in (mlp.up.weight, mlp.gate.weight, mlp.down.weight):
        assert_scale(p.grad, 1.0, 0.2)  # no 1/sqrt(expansion) weight-grad shrinkage
    layer = unn.TransformerLayer(128, 4, attn_tau=0.5, mlp_tau=0.5)
    x = torch.randn(8, 32, 128, requires_grad=True)
    y = layer(x)
    unit_backward(y)
    assert_scale(y, 1.0, 0.2)
    assert_scale(x.grad, 1.0, 0.2)


def test_residual_taus_properties():
    taus = unn.residual_taus(4, residual_mult=1.0, residual_attn_ratio=1.0)
    assert len(taus) == 8
    # cumulative variance weights: each branch adds τ² of the running total, so after all
    # branches every branch (weight 1) and the embedding (weight L/2) are accounted exactly
    total = 4.0
    for t in taus:
        total *= 1 + t * t
    assert total == pytest.approx(4.0 + 8.0, rel=1e-12)
    taus2 = unn.residual_taus(3, residual_mult=2.0, residual_attn_ratio=0.5)
    assert taus2[0] / taus2[1] != pytest.approx(1.0)


def test_depth_containers_nest():
    inner = unn.DepthSequential(unn.Linear(4, 4), unn.Linear(4, 4))
    outer = unn.DepthModuleList([inner, unn.DepthSequential(unn.Linear(4, 4)), unn.Linear(4, 4)])
    model = nn.Sequential(unn.Embedding(10, 4), outer)
    depths = unn.parameter_depths(model)
    assert outer.depth() == 4
    assert depths["0.weight"] == 1
    assert all(v == 4 for k, v in depths.items() if k.startswith("1."))


def test_parameter_roles_survive_copy_and_pickle():
    m = unn.TransformerDecoder(64, 32, 2, 2)
    roles = unn.parameter_roles(m)
    assert roles["embedding.weight"] == "embedding"
    assert roles["head.weight"] == "output"
    assert roles["layers.0.attn_norm.weight"] == "norm"
    assert roles["layers.1.mlp.down.weight"] == "weight"
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert unn.parameter_roles(clone) == roles
        assert unn.parameter_depths(clone) == unn.parameter_depths(m)


def test_decoder_loss_and_mask():
    m = unn.TransformerDecoder(97, 64, 2, 4, 2, window=8)
    ids = torch.randint(0, 97, (2, 24))
    loss = m.loss(ids)
    assert torch.isfinite(loss)
    pad = torch.ones(2, 1, 1, 24, dtype=torch.bool)
    pad[1, ..., 12:] = False
    assert m(ids, attn_mask=pad).shape == (2, 24, 97)


def test_module_bad_input():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        unn.Attention(64, 4, 3)
    with pytest.raises(ValueError, match="padding_mode"):
        unn.Conv1d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="class weights"):
        unn.CrossEntropyLoss(weight=torch.ones(3))
