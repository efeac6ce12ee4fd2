"""unit_scale's torch.fx path: inline functional calls and residual adds are rewritten."""

import logging

import torch
import torch.nn.functional as F
from torch import fx, nn

import unit_scaling.nn as unn
from unit_scaling.testing import assert_scale, unit_backward
from unit_scaling.transforms import unit_scale

D, HEADS = 128, 2


class InlineBlock(nn.Module):
    """A plain pre-activation block written with inline functional calls."""

    def __init__(self, d: int = D) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.w1 = nn.Parameter(torch.randn(4 * d, d) * 0.02)
        self.w2 = nn.Parameter(torch.randn(d, 4 * d) * 0.02)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(b, s, HEADS, d // HEADS).transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(o.transpose(1, 2).reshape(b, s, d))
        h = F.gelu(F.linear(x, self.w1))
        return x + F.linear(h, self.w2)


class MatmulSoftmax(nn.Module):
    def forward(self, q, k):
        return (q @ k.transpose(-1, -2)).softmax(-1)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, x):
        if x.sum() > 0:  # not symbolically traceable
            return self.lin(x)
        return -x


def test_fx_rewrites_inline_calls_and_residuals(caplog):
    with caplog.at_level(logging.INFO, logger="unit_scaling.transforms"):
        model = unit_scale(InlineBlock())
    assert isinstance(model, fx.GraphModule)
    assert isinstance(model.qkv, unn.Linear)
    text = caplog.text
    for expected in ("-> unit_scaling.functional.linear", "functional.gelu",
                     "functional.scaled_dot_product_attention", "-> residual (tau="):  # fmt: skip
        assert expected in text, text
    assert text.count("-> residual (tau=") == 2
    targets = {n.target for n in model.graph.nodes if n.op == "call_function"}
    assert F.linear not in targets
    assert F.gelu not in targets


def test_fx_converted_block_is_unit_scaled():
    torch.manual_seed(0)
    plain = InlineBlock()
    x = torch.randn(4, 64, D, requires_grad=True)
    model = unit_scale(plain)
    y = model(x)
    unit_backward(y)
    # block-level tolerance 0.25: attention near-uniform at init (E[1/N] rule) and two
    # residual adds compound the per-op ±10 %
    assert_scale(y, 1.0, 0.25)
    assert_scale(x.grad, 1.0, 0.25)
    # the rewritten inline linears were re-initialised N(0, 1) and get unit-scaled gradients
    assert_scale(model.w1, 1.0, 0.1)
    assert_scale(model.w2.grad, 1.0, 0.3)
    assert_scale(model.proj.weight.grad, 1.0, 0.3)
    # to_output_scale (the default for linears inside a residual branch) ties the input-grad
    # scale of w2 / proj to their fan-in instead of fan-out, so the gradients below them are
    # scaled by sqrt(d / 4d) = 1/2 (MLP) and about 1/2 after attention's tied scale, by design
    assert_scale(model.w1.grad, 0.5, 0.3)
    assert_scale(model.qkv.weight.grad, 0.5, 0.3)


def test_fx_rewrites_tensor_methods(caplog):
    with caplog.at_level(logging.INFO, logger="unit_scaling.transforms"):
        model = unit_scale(MatmulSoftmax())
    assert "Tensor.softmax -> unit_scaling.functional.softmax" in caplog.text
    assert "matmul -> unit_scaling.functional.matmul" in caplog.text
    q = torch.randn(8, 64, 32)
    y = model(q, torch.randn(8, 64, 32))
    # unit-scaled softmax output has unit RMS (the plain one has RMS ~ 1/64 here)
    assert 0.7 < float(y.square().mean().sqrt()) < 1.3


def test_fx_failure_falls_back_to_module_swapping(caplog):
    model = DataDependent()
    with caplog.at_level(logging.INFO, logger="unit_scaling.transforms"):
        out = unit_scale(model)
    assert out is model
    assert isinstance(model.lin, unn.Linear)
    assert "tracing of DataDependent failed" in caplog.text
    assert "falling back to module swapping" in caplog.text


def test_fx_reports_unsupported_calls(caplog):
    class Relu(nn.Module):
        def forward(self, x, w):
            return torch.relu(F.linear(x, w))

    with caplog.at_level(logging.INFO, logger="unit_scaling.transforms"):
        unit_scale(Relu())
    assert "kept relu (relu): no unit-scaled version" in caplog.text
