import pytest
import torch

import fp8_scaling as fs

ALL_BF16 = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
FMTS = list(fs.FORMATS.values())


def _torch_saturates(fmt) -> bool:
    # torch >= 2.12 saturates finite overflow in some eager casts; older versions give NaN/inf
    big = torch.tensor([fmt.max * 4])
    return bool(big.to(fmt.dtype).float().isfinite().all())


@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_saturating_cast_bit_exact_all_bf16(fmt):
    want = ALL_BF16.float().clamp(-fmt.max, fmt.max).to(fmt.dtype).view(torch.uint8)
    got = fs.simulate_cast(ALL_BF16, fmt, saturate=True)
    assert torch.equal(got, want)


@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_plain_cast_bit_exact_all_bf16(fmt):
    want = ALL_BF16.to(fmt.dtype).view(torch.uint8)
    got = fs.simulate_cast(ALL_BF16, fmt, saturate=_torch_saturates(fmt))
    assert torch.equal(got, want)


@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_decode_matches_torch_for_all_codes(fmt):
    codes = torch.arange(256, dtype=torch.uint8)
    got, want = fs.decode(codes, fmt), codes.view(fmt.dtype).float()
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.equal(got.nan_to_num(0.0), want.nan_to_num(0.0))


@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_format_constants(fmt):
    assert fmt.max == torch.finfo(fmt.dtype).max
    assert fmt.min_normal == torch.finfo(fmt.dtype).tiny


def test_stochastic_rounding_is_unbiased():
    g = torch.Generator().manual_seed(0)
    x = torch.full((200_000,), 1.0 + 1 / 32)  # between E4M3 neighbours 1.0 and 1.125
    r = fs.simulate_round(x, fs.E4M3, rounding="stochastic", generator=g)
    assert set(r.unique().tolist()) == {1.0, 1.125}
    # standard error of the mean is 0.125 * 0.43 / sqrt(2e5) ≈ 1.2e-4: 1e-3 is > 8 sigma
    assert abs(r.mean().item() - x[0].item()) / x[0].item() < 1e-3


def test_bad_inputs():
    with pytest.raises(ValueError, match="unsupported FP8 format"):
        fs.get_format("e3m4")
    with pytest.raises(TypeError, match="floating"):
        fs.simulate_round(torch.arange(3), fs.E4M3)
    with pytest.raises(TypeError, match="uint8"):
        fs.decode(torch.zeros(3), fs.E4M3)
    assert fs.get_format("E5M2") is fs.E5M2
