import copy

import pytest
import torch
from torch import nn

import fp8_scaling as fs
from fp8_scaling._linear_fn import history_bias


def test_history_roll_and_algorithms():
    rec = fs.DelayedScaling(history_len=3)
    f8 = fs.Float8Linear(16, 16, bias=False, recipe=rec)
    scales = [1.0, 4.0, 2.0, 0.5]
    for s in scales:
        x = torch.zeros(4, 16)
        x[0, 0] = s
        f8(x).sum().backward()
    h = f8.fp8_amax_history
    assert h[0].tolist() == [0.5, 2.0, 4.0]  # newest first, oldest (1.0) rolled out
    fmt = fs.E4M3
    assert history_bias(h[0], rec, fmt, 0) == fs.compute_bias(4.0, fmt)
    mr = fs.DelayedScaling(history_len=3, algo="most_recent")
    assert history_bias(h[0], mr, fmt, 0) == fs.compute_bias(0.5, fmt)
    ema = fs.DelayedScaling(history_len=3, algo="ema", ema_decay=0.5)
    want = (0.5 * 1 + 2.0 * 0.5 + 4.0 * 0.25) / 1.75
    assert history_bias(h[0], ema, fmt, 0) == fs.compute_bias(want, fmt)
    assert history_bias(h[0], rec, fmt, 2) == fs.compute_bias(4.0, fmt) - 2  # margin


def test_empty_history_uses_init_bias_and_nonfinite_is_skipped():
    rec = fs.DelayedScaling(history_len=2, init_bias=5)
    assert history_bias(torch.zeros(2), rec, fs.E4M3, 0) == 5
    f8 = fs.Float8Linear(16, 16, bias=False, recipe=rec)
    f8(torch.ones(2, 16))
    before = f8.fp8_amax_history.clone()
    x = torch.ones(2, 16)
    x[0, 0] = float("nan")
    y = f8(x)
    assert torch.isnan(y).any()
    assert torch.equal(f8.fp8_amax_history[0], before[0])  # NaN amax not pushed


def _train(model, steps, seed):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(steps):
        x = torch.randn(8, 32, generator=g)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, opt


def test_state_dict_round_trip_and_bit_identical_resume():
    torch.manual_seed(0)
    rec = fs.DelayedScaling(history_len=4)
    base = fs.convert_to_float8(nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 16)), rec)
    ref = copy.deepcopy(base)
    full, _ = _train(ref, 10, seed=1)
    first = copy.deepcopy(base)
    _train(first, 5, seed=1)
    sd = first.state_dict()
    assert "0.fp8_amax_history" in sd
    assert sd["0.fp8_amax_history"].shape == (3, 4)
    resumed = copy.deepcopy(base)
    resumed.load_state_dict(sd)
    assert torch.equal(resumed[0].fp8_amax_history, first[0].fp8_amax_history)
    # continue with the same data stream: replay the generator's first 5 draws
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        torch.randn(8, 32, generator=g)
    opt = torch.optim.SGD(resumed.parameters(), lr=0.1)
    tail = []
    for _ in range(5):
        x = torch.randn(8, 32, generator=g)
        loss = resumed(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        tail.append(loss.item())
    assert tail == full[5:]  # bit-identical (plain SGD has no optimizer state to restore)


@pytest.mark.slow  # ~10 s of tracing on one core
def test_delayed_under_compile_fullgraph():
    torch.manual_seed(0)
    f8 = fs.Float8Linear(32, 16, recipe=fs.DelayedScaling(history_len=2))
    x = torch.randn(8, 32)
    torch._dynamo.reset()
    cf = torch.compile(f8, fullgraph=True, backend="aot_eager")  # dynamo + AOTAutograd
    for _ in range(3):
        cf(x).sum().backward()
    h = f8.fp8_amax_history
    assert (h > 0).all()  # input, weight and gradient rows all recorded, in fwd and bwd
    assert h[0, 0] == x.abs().max()


def test_recipe_validation():
    with pytest.raises(ValueError, match="algo"):
        fs.DelayedScaling(algo="mean")
    with pytest.raises(ValueError, match="history_len"):
        fs.DelayedScaling(history_len=0)
    with pytest.raises(ValueError, match="grad_weight"):
        fs.JustInTimeScaling(grad_weight="fp16")
    with pytest.raises(ValueError, match="-31, 31"):
        fs.ConstantScaling(bias=40)
    with pytest.raises(TypeError, match="margin"):
        fs.JustInTimeScaling(margin=1.5)
    r1, r2 = fs.DelayedScaling(), fs.DelayedScaling()
    assert r1 == r2
    assert hash(r1) == hash(r2)
    with pytest.raises(AttributeError):
        r1.margin = 2  # frozen
    assert fs.Formats("e5m2", "e5m2").forward is fs.E5M2
