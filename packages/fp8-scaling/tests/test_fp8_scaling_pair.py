"""The pair kernels (one or two tensors: partial amaxes in one launch, the casts in one launch)
vs the per-tensor torch references, under ``TRITON_INTERPRET=1`` on tiny odd shapes.

As in test_fp8_scaling_fastcast.py the cast writes the saturated scaled float32 values
(``out_fp32=True``) and torch casts those (the interpreter's own fp32 -> fp8 rounding differs
from the GPU's), so the comparison is bit-exact on the FP8 bytes.
"""

import pytest
import torch

import fp8_scaling as fs
from fp8_scaling._cast_ops import amax_pair_impl, cast_pair_impl, cast_transpose_ref
from fp8_scaling._fastcast import CastConfig


def _t(shape, seed, scale):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale).to(torch.bfloat16)


def _same(q, ref, fmt):
    return torch.equal(q.to(fs.get_format(fmt).dtype).view(torch.uint8), ref.view(torch.uint8))


# E4M3 in the default suite; E5M2 (same code, another constant) in the slow one; the
# one-tensor test below covers E5M2 too
@pytest.mark.parametrize("fmt", ["e4m3", pytest.param("e5m2", marks=pytest.mark.slow)])
def test_pair_kernels_match_reference_odd_shapes(triton_interpret, fmt):
    from fp8_scaling._pair import launch_amax_pair, launch_cast_pair

    a, b = _t((37, 53), 0, 300.0), _t((21, 53), 1, 0.01)  # biases far apart
    # 256-element blocks, 3 programs: each walks blocks of both tensors (grid stride)
    part = launch_amax_pair(a, b, block=256, programs=3)
    assert part.shape == (3, 2)
    assert torch.equal(part.amax(0), torch.stack([fs.amax(a), fs.amax(b)]))
    f = fs.get_format(fmt)
    cfg = CastConfig(bm=16, bn=32, warps=1, group=2)  # masked edge tiles in both tensors
    cases = [(a, b, part, ta, tb) for ta, tb in ((True, True), (True, False), (False, True))]
    a2, b2 = _t((32, 64), 5, 3.0), _t((48, 64), 6, 1e-3)  # full tiles only: the unmasked path
    cases.append((a2, b2, launch_amax_pair(a2, b2, block=512, programs=2), True, True))
    for a, b, part, ta, tb in cases:
        qa, qta, inva, ama, qb, qtb, invb, amb = launch_cast_pair(
            a, b, part, fmt, f.max, 1, ta, tb, cfg, out_fp32=True
        )
        assert ama.shape == (1,)  # (1,), not 0-d: see launch_cast_pair
        assert torch.equal(torch.cat([ama, amb]), part.amax(0))
        for q, qt, x, am, inv, t in ((qa, qta, a, ama, inva, ta), (qb, qtb, b, amb, invb, tb)):
            rq, rqt, rinv = cast_transpose_ref(x, am, fmt, 1, t)
            assert inv == rinv
            assert _same(q, rq, fmt)
            assert qt.shape == rqt.shape
            if t:
                assert _same(qt, rqt, fmt)


def test_pair_kernels_one_tensor_and_nan(triton_interpret):
    from fp8_scaling._pair import launch_amax_pair, launch_cast_pair

    g = _t((48, 40), 4, 2.0)
    g[5, 6] = float("nan")  # counts as inf: bias -31, the NaN stays NaN
    part = launch_amax_pair(g, block=128, programs=4)
    assert part[:, 0].max() == float("inf")
    q, qt, inv, am, qb, *_ = launch_cast_pair(
        g, None, part, "e5m2", 57344.0, 0, True, False, CastConfig(16, 16, 1), out_fp32=True
    )
    rq, rqt, rinv = cast_transpose_ref(g, torch.tensor(float("inf")), "e5m2", 0, True)
    assert am == float("inf")
    assert inv == rinv
    assert qb is None  # nothing allocated for a second tensor
    assert _same(q, rq, "e5m2")
    assert _same(qt, rqt, "e5m2")


def test_pair_reference_path_and_errors():
    from fp8_scaling._pair import launch_amax_pair

    a, b = _t((8, 16), 2, 1.0), _t((4, 16), 3, 2.0)
    part = amax_pair_impl(a, b)  # CPU tensors outside the interpreter: the torch reference
    assert torch.equal(part[0], torch.stack([fs.amax(a), fs.amax(b)]))
    qa, qta, inv, _, _, qtb, _, _ = cast_pair_impl(a, b, part, "e4m3", 0, True, False)
    ra = cast_transpose_ref(a, part[0, 0], "e4m3", 0, True)
    assert torch.equal(qa.view(torch.uint8), ra[0].view(torch.uint8))
    assert torch.equal(qta.view(torch.uint8), ra[1].view(torch.uint8))
    assert qtb.shape == (0, 0)
    assert inv == ra[2]
    with pytest.raises(ValueError, match="one dtype"):
        launch_amax_pair(a, b.float())


def test_pair_backend_accepted_and_emulated_off_gpu():
    # off an FP8 GPU every backend runs the exact emulation: "pair" gives the same numbers
    torch.manual_seed(0)
    base = torch.nn.Linear(32, 48)
    x = torch.randn(16, 32)
    y_pair = fs.Float8Linear.from_linear(base, cast_backend="pair")(x)
    y_auto = fs.Float8Linear.from_linear(base)(x)
    assert torch.equal(y_pair, y_auto)
    with pytest.raises(ValueError, match="cast_backend"):
        fs.Float8Linear(32, 48, cast_backend="pairs")


def test_pair_route_through_the_layer_matches_per_tensor_kernels(triton_interpret, monkeypatch):
    # the GPU branch of Float8Linear end to end on the CPU: Triton kernels in the interpreter,
    # an exact emulation of torch._scaled_mm; the pair route (kernel outputs of shape (1,),
    # viewed as 0-d scales) against one kernel launch per tensor
    from fp8_scaling import _cast_ops, _linear_fn, _pair

    def scaled_mm(a, b, scale_a, scale_b, out_dtype=None, use_fast_accum=False):
        assert scale_a.dim() == scale_b.dim() == 0
        return (a.double() @ b.double() * (scale_a.double() * scale_b.double())).to(out_dtype)

    monkeypatch.setattr(_cast_ops, "_use_triton", lambda x, fmt=None: True)
    monkeypatch.setattr(_pair, "_sm_count", lambda index: 2)
    monkeypatch.setattr(_linear_fn, "hardware_fp8_supported", lambda device: True)
    monkeypatch.setattr(torch, "_scaled_mm", scaled_mm, raising=False)
    torch.manual_seed(0)
    w, x0 = (torch.randn(48, 32) * 0.05).bfloat16(), (torch.randn(48, 32) * 3).bfloat16()
    out = {}
    for backend in ("pair", "triton"):
        lin = fs.Float8Linear(32, 48, bias=False, dtype=torch.bfloat16, cast_backend=backend)
        with torch.no_grad():
            lin.weight.copy_(w)
        x = x0.clone().requires_grad_(True)
        y = lin(x)
        y.backward(torch.ones_like(y))
        out[backend] = (y, x.grad, lin.weight.grad)
    for a, b in zip(out["pair"], out["triton"]):
        assert torch.isfinite(a.float()).all()
        assert torch.equal(a, b)
