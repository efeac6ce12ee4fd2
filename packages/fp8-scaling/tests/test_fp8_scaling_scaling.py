import math

import pytest
import torch

import fp8_scaling as fs

FMTS = list(fs.FORMATS.values())


@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_largest_value_lands_in_upper_binade(fmt):
    g = torch.Generator().manual_seed(1)
    a = torch.rand(20_000, generator=g) * 10.0 ** torch.randint(-7, 7, (20_000,), generator=g)
    a = a[a > 0]
    b = fs.compute_bias(a, fmt)
    inside = b.abs() < 31
    v = a[inside] * torch.exp2(b[inside])
    assert inside.float().mean() > 0.5  # most amaxes are inside the ±31 clip
    assert bool(((v > fmt.max / 2) & (v <= fmt.max)).all())


def test_bias_edge_cases():
    f = fs.E4M3
    a = torch.tensor([0.0, float("inf"), float("nan"), 1e-45, 1e-38, f.max, f.max * 1.0001, 1e30])
    b = fs.compute_bias(a, f)
    assert b[0] == 31  # amax 0: clip of +inf
    assert b[1] == -31  # inf: clip of -inf
    assert math.isnan(b[2])  # NaN propagates (the scale becomes NaN: never silently finite)
    assert b[3] == 31
    assert b[4] == 31
    assert b[5] == 0
    assert b[6] == -1
    assert b[7] == -31  # clip
    assert fs.compute_bias(1.0, f, margin=3) == fs.compute_bias(1.0, f) - 3
    assert fs.compute_bias(torch.tensor(448.0), f).dtype == torch.float32


def test_bias_exact_at_power_of_two_boundaries():
    # amax exactly max / 2**k must give bias k (no rounding of max / amax)
    for k in range(-20, 20):
        assert fs.compute_bias(torch.tensor(448.0 * 2.0**-k), fs.E4M3) == max(-31, min(31, k))


def test_fp32_scale_edge_cases():
    s = fs.compute_scale(torch.tensor([0.0, 2.0, float("inf"), 1e-45]), fs.E4M3)
    assert s[0] == 1.0
    assert s[1] == 224.0
    assert torch.isfinite(s).all()
    assert fs.compute_scale(2.0, fs.E4M3, margin=1) == 112.0


def test_quantize_saturates_and_flags_inf():
    x = torch.tensor([1000.0, -1000.0, float("inf"), float("nan"), 1.0])
    q = fs.quantize(x, torch.tensor(1.0), fs.E4M3).float()
    assert q[0] == 448
    assert q[1] == -448
    assert torch.isnan(q[2])
    assert torch.isnan(q[3])
    assert q[4] == 1.0


def test_amax_counts_nan_as_inf():
    assert fs.amax(torch.tensor([1.0, float("nan")])) == float("inf")
    assert fs.amax(torch.tensor([-3.0, 2.0])) == 3.0
    assert fs.amax(torch.empty(0)) == 0
    with pytest.raises(TypeError):
        fs.amax(torch.arange(3))


def test_bias_to_scale_exact():
    b = torch.arange(-31, 32).float()
    assert torch.equal(fs.bias_to_scale(b), torch.tensor([2.0**i for i in range(-31, 32)]))
