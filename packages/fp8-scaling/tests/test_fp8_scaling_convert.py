import torch
from torch import nn

import fp8_scaling as fs


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16, 32)
        self.body = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.odd = nn.Linear(32, 10)  # 10 outputs: not a multiple of 16
        self.lm_head = nn.Linear(10, 16)

    def forward(self, x):
        return self.lm_head(self.odd(self.body(self.embed(x))))


def test_convert_and_revert():
    net = _Net()
    x = torch.randn(4, 16)
    ref = net(x)
    w = net.body[0].weight
    fs.convert_to_float8(net, fs.JustInTimeScaling())
    assert isinstance(net.body[0], fs.Float8Linear)
    assert isinstance(net.body[2], fs.Float8Linear)
    assert type(net.embed) is nn.Linear
    assert type(net.lm_head) is nn.Linear
    assert type(net.odd) is nn.Linear  # auto_filter: shape FP8 cannot run
    assert net.body[0].weight is w  # parameters shared
    assert net.body[0].name == "body.0"
    y = net(x)
    # two FP8 layers in a row: ~25 dB each, so a 10 % relative error bound is loose but safe
    assert ((y - ref).norm() / ref.norm()).item() < 0.1
    fs.revert_to_linear(net)
    assert type(net.body[0]) is nn.Linear
    assert net.body[0].weight is w
    assert torch.equal(net(x), ref)


def test_module_filter_and_no_auto_filter():
    net = _Net()
    fs.convert_to_float8(net, module_filter_fn=lambda m, name: name != "body.2", auto_filter=False)
    assert isinstance(net.body[0], fs.Float8Linear)
    assert type(net.body[2]) is nn.Linear
    assert isinstance(net.odd, fs.Float8Linear)  # without auto_filter odd shapes are emulated
    net(torch.randn(3, 16)).sum().backward()


def test_roofline_prediction():
    # FP8 cannot run non-multiples of 16; big GEMMs are predicted faster than small ones
    assert fs.predict_speedup(100, 64, 64) == 0.0
    small, big = fs.predict_speedup(1024, 1024, 1024), fs.predict_speedup(16384, 8192, 28672)
    assert small < 1.0 < big
    # on CPU (no FP8 hardware) auto_filter never switches to high precision
    f8 = fs.Float8Linear(16, 16, auto_filter=True)
    assert f8.use_fp8_for(torch.randn(2, 16))


def _fake_fp8_gpu(monkeypatch):
    """Pretend the layers sit on an FP8 GPU, so the auto-filter rule is the one taken on Hopper
    (the roofline itself is unchanged: H200 constants)."""
    from fp8_scaling import _linear

    monkeypatch.setattr(_linear, "hardware_fp8_supported", lambda device: True)


def test_tokens_keeps_plain_linear_objects(monkeypatch):
    _fake_fp8_gpu(monkeypatch)
    big = nn.Sequential(nn.Linear(8192, 8192, bias=False, device="meta"))
    small = nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 64))
    kept = [small[0], small[2]]
    fs.convert_to_float8(small, tokens=4096)
    # predicted slower at 4096 rows: the very same nn.Linear objects stay in place
    assert [small[0], small[2]] == kept
    assert all(type(m) is nn.Linear for m in kept)
    fs.convert_to_float8(big, tokens=16384)  # predicted faster: converted
    assert isinstance(big[0], fs.Float8Linear)
    # without tokens the decision is per call: converted, then high precision at run time
    per_call = fs.convert_to_float8(nn.Sequential(nn.Linear(64, 64)))
    assert isinstance(per_call[0], fs.Float8Linear)
    assert not per_call[0].use_fp8_for(torch.randn(4096, 64))
    # auto_filter=False converts whatever tokens says
    assert isinstance(
        fs.convert_to_float8(nn.Sequential(nn.Linear(64, 64)), auto_filter=False, tokens=8)[0],
        fs.Float8Linear,
    )


def test_tokens_rejects_bad_values():
    import pytest

    for bad in (0, -3, 2.5, "4096"):
        with pytest.raises(ValueError, match="tokens must be a positive int"):
            fs.convert_to_float8(nn.Sequential(nn.Linear(16, 16)), tokens=bad)


def test_filtered_layer_traces_to_the_plain_graph(monkeypatch):
    # a layer kept in high precision at run time must compile to the same graph as nn.Linear:
    # one linear op, no graph break (only its guards differ)
    _fake_fp8_gpu(monkeypatch)
    lin = nn.Linear(64, 64, bias=False, dtype=torch.bfloat16)
    wrapped = fs.Float8Linear.from_linear(lin, auto_filter=True)
    x = torch.randn(32, 64, dtype=torch.bfloat16)
    ops = []
    for mod in (lin, wrapped):
        ex = torch._dynamo.explain(mod)(x)
        assert ex.graph_count == 1
        assert ex.graph_break_count == 0
        ops.append([n.target for g in ex.graphs for n in g.graph.nodes if n.op == "call_function"])
    assert ops[0] == ops[1] == [torch._C._nn.linear]
    assert torch.equal(wrapped(x), lin(x))
