"""The plain-torch casts traced under torch.compile vs the reference bias and cast."""

import pytest
import torch

import fp8_scaling as fs
from fp8_scaling._cast_ops import cast_transpose_ref, delayed_cast_ref
from fp8_scaling._formats import get_format
from fp8_scaling._linear_fn import _quant
from fp8_scaling._torch_cast import cast_pow2_torch, cast_scaled_torch, pow2_scales_torch

EDGE = [0.0, 1e-45, 1e-40, 1.2e-38, 1e-3, 0.5, 1.0, 1.75, 1.7500001, 3.5, 448.0, 449.0,
        57344.0, 57345.0, 1e30, 3.4e38, float("inf")]  # fmt: skip


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("margin", [0, 3])
def test_pow2_scales_match_compute_bias(fmt, margin):
    g = torch.Generator().manual_seed(0)
    rand = torch.exp(torch.randn(500, generator=g) * 20).tolist()
    for a in EDGE + rand:
        at = torch.tensor(a, dtype=torch.float32)
        scale, inv = pow2_scales_torch(at, get_format(fmt), margin)
        b = fs.compute_bias(at, fmt, margin)
        # exact: both are integer powers of two built from the same integer bias
        assert scale.item() == 2.0 ** b.item(), (a, scale, b)
        assert inv.item() == 2.0 ** -b.item(), (a, inv, b)


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("shape", [(3, 17), (37, 53)])
def test_cast_pow2_torch_matches_reference(fmt, shape):
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(shape, generator=g) * 7).to(torch.bfloat16)
    x[0, 0] = float("inf")
    x[-1, -1] = -3e4
    q, qt, inv, a = cast_pow2_torch(x, get_format(fmt), 0, True)
    rq, rqt, rinv = cast_transpose_ref(x, fs.amax(x), fmt, 0, True)
    # bit-exact: the same scale and the same torch cast (compared as bytes, NaN included)
    assert torch.equal(q.view(torch.uint8), rq.view(torch.uint8))
    assert torch.equal(qt.view(torch.uint8), rqt.view(torch.uint8))
    assert inv.item() == rinv.item()
    assert a.item() == float("inf")
    s = torch.tensor(2.0**-3)
    q2, qt2, a2 = cast_scaled_torch(x, s, get_format(fmt), False)
    rq2, _, ra2 = delayed_cast_ref(x, s, fmt, False)
    assert qt2 is None
    assert torch.equal(q2.view(torch.uint8), rq2.view(torch.uint8))
    assert a2.item() == ra2.item()


@pytest.mark.parametrize(
    "recipe", [fs.JustInTimeScaling(), fs.ConstantScaling(bias=2)], ids=["jit", "constant"]
)
def test_quant_inductor_backend_matches_reference(recipe):
    x = torch.randn(32, 48, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    fmt = get_format("e4m3")
    fast = _quant(x, fmt, 0, recipe, None, "inductor", True)
    ref = _quant(x, fmt, 0, recipe, None, False, True)
    assert torch.equal(fast.data.view(torch.uint8), ref.data.view(torch.uint8))
    assert torch.equal(fast.data_t.view(torch.uint8), ref.data.t().contiguous().view(torch.uint8))
    assert float(fast.inv) == float(ref.inv)
    assert float(fast.amax) == float(ref.amax)


def test_cast_backend_validated():
    with pytest.raises(ValueError, match="cast_backend"):
        fs.Float8Linear(16, 16, cast_backend="cuda")
    with pytest.raises(ValueError, match="fast must be"):
        fs.float8_linear(torch.randn(2, 16), torch.randn(16, 16), fast="fastest")
