"""Transforms: automatic unit scaling and format simulation."""

import logging

import torch
import torch.nn.functional as F
from torch import nn

import unit_scaling.nn as unn
from unit_scaling.formats import E4M3, E5M2
from unit_scaling.testing import assert_scale, unit_backward
from unit_scaling.transforms import simulate_format, unit_scale


def test_unit_scale_swaps_and_logs(caplog):
    model = nn.Sequential(
        nn.Embedding(100, 256), nn.LayerNorm(256), nn.Linear(256, 512), nn.GELU(),
        nn.BatchNorm1d(16), nn.Linear(512, 100),
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="unit_scaling.transforms"):
        unit_scale(model, readout="5")
    assert isinstance(model[2], unn.Linear)
    assert isinstance(model[5], unn.LinearReadout)
    assert isinstance(model[4], nn.BatchNorm1d)
    assert "replaced 2 Linear -> Linear" in caplog.text
    assert "kept 4 (BatchNorm1d)" in caplog.text


def test_unit_scale_makes_plain_mlp_unit_scaled():
    plain = nn.Sequential(nn.Linear(256, 1024), nn.GELU(), nn.Linear(1024, 256))
    x = torch.randn(512, 256, requires_grad=True)
    y = plain(x)
    unit_backward(y)
    assert float(y.detach().std()) < 0.5  # torch's default init shrinks activations
    model = unit_scale(plain)
    x.grad = None
    y = model(x)
    unit_backward(y)
    assert_scale(y, 1.0, 0.2)  # two layers: 0.2 layer-level tolerance
    assert_scale(model[2].weight.grad, 1.0, 0.2)
    # to_output_scale ties layer 2's input-grad scale to its fan-in (1024) instead of its
    # fan-out (256), so gradients below it are sqrt(256/1024) = 1/2 by design
    assert_scale(model[0].weight.grad, 0.5, 0.2)


def test_unit_scale_copy_weights():
    lin = nn.Linear(8, 4)
    new = unit_scale(lin, reinit=False)
    assert isinstance(new, unn.Linear)
    torch.testing.assert_close(new.weight, lin.weight)


def test_simulate_format_quantises_forward_and_backward():
    lin = nn.Linear(64, 32)
    x = torch.randn(16, 64, requires_grad=True)
    sim = simulate_format(lin, E4M3, E5M2)
    y = sim(x)
    ref = F.linear(E4M3.quantise(x), E4M3.quantise(lin.weight), lin.bias)
    torch.testing.assert_close(y, ref, rtol=0, atol=0)
    g = torch.randn_like(y)
    y.backward(g)
    # the input gradient is the E5M2-rounded gradient of the quantised matmul
    expected = E5M2.quantise(g @ E4M3.quantise(lin.weight))
    torch.testing.assert_close(x.grad, expected, rtol=0, atol=0)


def test_simulate_format_on_unit_scaled_decoder_compiles():
    model = simulate_format(unn.TransformerDecoder(64, 32, 1, 2), E4M3, E5M2)
    ids = torch.randint(0, 64, (2, 8))
    expl = torch._dynamo.explain(model)(ids)
    assert expl.graph_break_count == 0
    assert torch.isfinite(model.loss(ids))
