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
