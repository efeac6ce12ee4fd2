"""Number formats: bit-exact with torch's float8 casts over all 65,536 bf16 bit patterns."""

import pytest
import torch

from unit_scaling.formats import E2M1, E4M3, E4M3FNUZ, E5M2, E5M2FNUZ, FPFormat

FP8 = [E4M3, E5M2, E4M3FNUZ, E5M2FNUZ]


def _all_bf16(device="cpu"):
    return (
        torch.arange(-32768, 32768, dtype=torch.int32, device=device)
        .to(torch.int16)
        .view(torch.bfloat16)
    )


def _bit_equal(a, b):
    a, b = a.float(), b.float()
    same_bits = a.view(torch.int32) == b.view(torch.int32)  # distinguishes +0 / -0
    return same_bits | (a.isnan() & b.isnan())


@pytest.mark.parametrize("fmt", FP8, ids=str)
def test_bit_exact_all_bf16_patterns(fmt):
    x = _all_bf16()
    ref = x.to(fmt.torch_dtype).to(torch.bfloat16)
    ok = _bit_equal(fmt.quantise(x), ref)
    assert bool(ok.all()), x[~ok][:8]


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", FP8, ids=str)
def test_bit_exact_all_bf16_patterns_cuda(fmt):
    x = _all_bf16("cuda")
    ok = _bit_equal(fmt.quantise(x), x.to(fmt.torch_dtype).to(torch.bfloat16))
    assert bool(ok.all()), x[~ok][:8]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("fmt", [E4M3, E5M2], ids=str)
def test_other_input_dtypes(fmt, dtype):
    x = (torch.randn(20000) * torch.logspace(-12, 6, 20000, base=2.0)).to(dtype)
    out = fmt.quantise(x)
    assert out.dtype == dtype
    assert bool(_bit_equal(out, x.to(fmt.torch_dtype).to(dtype)).all())


def test_constants():
    assert E4M3.max_value == 448
    assert not E4M3.has_inf
    assert E5M2.max_value == 57344
    assert E5M2.has_inf
    assert E4M3FNUZ.max_value == 240
    assert E5M2FNUZ.max_value == 57344
    grid = E2M1.quantise(torch.linspace(-7, 7, 1001)).unique().abs().unique().tolist()
    assert grid == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def test_saturation_and_specials():
    sat = FPFormat(4, 3, "fn", saturate=True)
    nonsat = FPFormat(4, 3, "fn", saturate=False)
    x = torch.tensor([500.0, float("inf"), float("nan"), -1e6])
    assert sat.quantise(x)[[0, 1, 3]].tolist() == [448.0, 448.0, -448.0]
    assert torch.isnan(nonsat.quantise(x)[[0, 1, 3]]).all()
    assert torch.isnan(sat.quantise(x)[2])
    assert E5M2.quantise(torch.tensor([1e6])).isinf().all()


def test_stochastic_rounding_is_unbiased():
    fmt = FPFormat(4, 3, "fn", rounding="stochastic")
    x = torch.full((200_000,), 1.0 + 1 / 32)  # a quarter of the way from 1 to 1.125
    q = fmt.quantise(x, generator=torch.Generator().manual_seed(0))
    assert set(q.unique().tolist()) == {1.0, 1.125}
    # mean of Bernoulli(1/4) steps of 1/8: std of the mean is 0.125*sqrt(3/16/2e5) = 1.2e-4
    assert abs(float(q.mean()) - float(x[0])) < 6e-4


def test_compiles_without_graph_break():
    x = torch.randn(1000) * 100
    expl = torch._dynamo.explain(E4M3.quantise)(x)
    assert expl.graph_break_count == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(exponent_bits=0, mantissa_bits=3), "exponent_bits"),
        (dict(exponent_bits=4, mantissa_bits=-1), "mantissa_bits"),
        (dict(exponent_bits=4, mantissa_bits=3, encoding="ocp"), "encoding"),
        (dict(exponent_bits=4, mantissa_bits=3, rounding="up"), "rounding"),
    ],
)
def test_invalid_formats(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FPFormat(**kwargs)
