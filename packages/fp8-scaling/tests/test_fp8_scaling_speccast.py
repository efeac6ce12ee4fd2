"""The one-pass JIT cast (``_speccast``): kernels vs the torch reference, routing, the layer.

Kernels run under ``TRITON_INTERPRET=1`` on tiny odd shapes and write the saturated scaled
float32 values (``out_fp32=True``), which torch then casts, because the interpreter's own
fp32 -> fp8 rounding differs from the GPU's (as in test_fp8_scaling_fastcast.py); the FP8 bytes
themselves are compared on the GPU (test_fp8_scaling_gpu.py).
"""

import pytest
import torch

import fp8_scaling as fs
from fp8_scaling import _linear_fn
from fp8_scaling._fastcast import CastConfig
from fp8_scaling._speccast import spec_cast_impl, spec_cast_ref

CFG = CastConfig(16, 32, 1, 0, 0, 1, 2)  # masked edge tiles at (37, 53)


def _x(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 5).to(torch.bfloat16)


def _same(got, want, fmt):
    dt = fs.get_format(fmt).dtype
    return torch.equal(got.to(dt).view(torch.uint8), want.view(torch.uint8))


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_spec_cast_matches_jit_reference_any_guess(triton_interpret, fmt):
    # right guess (the first pass's bytes stay), off by 2 and NaN (the second pass recasts):
    # always the two-pass JIT result, and the new scale is the JIT scale
    from fp8_scaling._speccast import launch_spec_cast

    x = _x((37, 53), 1)
    rq, rqt, rinv, ra, rs = spec_cast_ref(x, None, fmt, 1, True)
    guesses = [rs, rs * 2, torch.tensor(float("nan"))] if fmt == "e4m3" else [rs / 2]
    for guess in guesses:
        q, qt, inv, a, s = launch_spec_cast(x, fmt, guess.reshape(1), 1, True, CFG, True)
        assert torch.equal(a, ra)
        assert torch.equal(inv, rinv)
        assert torch.equal(s, rs)
        assert _same(q, rq, fmt)
        assert _same(qt, rqt, fmt)


def test_spec_cast_second_pass_skips_only_when_the_guess_holds(triton_interpret):
    # the second kernel alone on outputs pre-filled with a sentinel: untouched when the JIT
    # scale equals the guess, fully rewritten when it does not
    from fp8_scaling._fastcast import _cast2_kernel
    from fp8_scaling._kernels import _cast_consts

    x = _x((37, 53), 2)
    rq, rqt, _rinv, ra, rs = spec_cast_ref(x, None, "e4m3", 0, True)
    for guess, kept in ((rs, True), (rs * 4, False)):
        q = torch.full((37, 53), -7.0)
        qt = torch.full((53, 37), -7.0)
        inv, scale = torch.empty(()), torch.empty(())
        consts = _cast_consts("e4m3", 448.0, 0, False, True, True)
        _cast2_kernel[(3,)](
            x, ra.clone(), guess.clone(), q, qt, inv, scale, 37, 53, **consts, EVEN=False,
            TILE_MAX=False, FIXUP=True, BM=16, BN=32, GROUP=2, TMODE=0, STAGES=1, num_warps=1,
        )  # fmt: skip
        assert torch.equal(scale, rs)
        assert torch.equal(inv, rs.reciprocal())
        if kept:
            assert bool((q == -7).all())
            assert bool((qt == -7).all())
        else:
            assert _same(q, rq, "e4m3")
            assert _same(qt, rqt, "e4m3")


def test_spec_cast_reference_path_and_errors():
    x = _x((24, 40), 3)
    q, qt, inv, a, s = spec_cast_impl(x, torch.ones(1), "e5m2", 0, False)  # CPU: the reference
    assert qt.shape == (0, 0)
    assert a == fs.amax(x)
    want = fs.quantize(x, torch.exp2(fs.compute_bias(a, fs.E5M2)), fs.E5M2)
    assert torch.equal(q.view(torch.uint8), want.view(torch.uint8))
    assert s * inv == 1.0
    with pytest.raises(ValueError, match="2-D"):
        spec_cast_impl(x.reshape(-1), torch.ones(1), "e4m3", 0, True)
    with pytest.raises(ValueError, match="format"):
        spec_cast_impl(x, torch.ones(1), "e3m4", 0, True)
    with pytest.raises(ValueError, match="scale_state"):
        fs.float8_linear(x.float(), torch.randn(16, 40), scale_state=torch.ones(2))


def test_spec_routing(monkeypatch):
    # "spec" takes the one-pass cast for JIT bf16/fp16 2-D tensors with a guess; "auto" only
    # when AUTO_SPEC is set (the default) and the tensor is large enough; delayed and fp32
    # inputs never
    t, g, jit = torch.zeros(32, 64).bfloat16(), torch.ones(()), fs.JustInTimeScaling()
    assert _linear_fn._spec_ok(t, jit, "spec", g)
    assert not _linear_fn._spec_ok(t, jit, "spec", None)
    assert not _linear_fn._spec_ok(t.float(), jit, "spec", g)
    assert not _linear_fn._spec_ok(t, fs.DelayedScaling(), "spec", g)
    monkeypatch.setattr(_linear_fn, "AUTO_SPEC", False)
    assert not _linear_fn._spec_ok(t, jit, "auto", g)
    assert _linear_fn._pair_ok(t, t, jit, fs.E4M3, "auto", spec_ready=True)
    monkeypatch.setattr(_linear_fn, "AUTO_SPEC", True)
    monkeypatch.setattr(_linear_fn, "AUTO_SPEC_MIN_NUMEL", t.numel())
    assert _linear_fn._spec_ok(t, jit, "auto", g)
    assert not _linear_fn._spec_ok(t, jit, "triton", g)
    # and "auto" then leaves the pair route to tensors below the threshold (or without guesses)
    assert not _linear_fn._pair_ok(t, t, jit, fs.E4M3, "auto", spec_ready=True)
    assert _linear_fn._pair_ok(t, t, jit, fs.E4M3, "auto", spec_ready=False)
    assert _linear_fn._pair_ok(t, t, jit, fs.E4M3, "pair", spec_ready=True)
    monkeypatch.setattr(_linear_fn, "AUTO_SPEC_MIN_NUMEL", t.numel() + 1)
    assert not _linear_fn._spec_ok(t, jit, "auto", g)


@pytest.mark.slow  # ~2 s in the interpreter; the GPU test covers the same route on hardware
def test_spec_route_through_the_layer_matches_two_pass(triton_interpret, monkeypatch):
    # the GPU branch of Float8Linear on the CPU (kernels in the interpreter, an exact emulation
    # of torch._scaled_mm): cast_backend="spec" vs "triton" over two steps whose scales differ
    # (the first guess is wrong, the second step's too): bit-identical outputs and gradients;
    # the layer's guesses end as the last step's scales
    from fp8_scaling import _cast_ops, _speccast

    def scaled_mm(a, b, scale_a, scale_b, out_dtype=None, use_fast_accum=False):
        assert a.stride(1) == 1
        assert b.stride(0) == 1
        return (a.double() @ b.double() * (scale_a.double() * scale_b.double())).to(out_dtype)

    monkeypatch.setattr(_cast_ops, "_use_triton", lambda x, fmt=None: True)
    monkeypatch.setattr(_speccast, "spec_cast_ok", lambda x, fmt: True)
    monkeypatch.setattr(_linear_fn, "hardware_fp8_supported", lambda device: True)
    monkeypatch.setattr(torch, "_scaled_mm", scaled_mm, raising=False)
    torch.manual_seed(0)
    w, x0 = (torch.randn(32, 16) * 0.05).bfloat16(), (torch.randn(16, 16) * 3).bfloat16()
    out = {}
    for backend in ("spec", "triton"):
        lin = fs.Float8Linear(16, 32, bias=False, dtype=torch.bfloat16, cast_backend=backend)
        with torch.no_grad():
            lin.weight.copy_(w)
        for f in (1.0, 4.0):
            x = (x0 * f).requires_grad_(True)
            y = lin(x)
            y.backward(torch.ones_like(y))
        out[backend] = (y, x.grad, lin.weight.grad, lin.fp8_scale_guess.clone())
    for a, b in zip(out["spec"][:3], out["triton"][:3]):
        assert torch.equal(a, b)
    x_last = x0 * 4.0
    want = [
        torch.exp2(fs.compute_bias(fs.amax(t), f))
        for t, f in ((x_last, fs.E4M3), (w, fs.E4M3), (torch.ones(16, 32), fs.E5M2))
    ]
    assert torch.equal(out["spec"][3], torch.stack(want))
    assert torch.equal(out["triton"][3], torch.ones(3))  # untouched by the two-pass route
