"""The GPU code path (``torch._scaled_mm`` operands, layouts, scales) run on the CPU.

``torch._scaled_mm`` is replaced by an exact emulation that also enforces the operand rules of
the CUDA kernel (FP8 operands, A row-major, B column-major, never E5M2 x E5M2, float32
single-element dequantisation scales, dims multiple of 16, no bias with a float32 output), and
the device is declared FP8-capable, so ``Float8Linear`` takes the branch it takes on a Hopper
GPU. The demo GPT then trains a few steps as ``train_demo`` does on CUDA (bf16 autocast, float32
master weights, gradient clipping, AdamW).
"""

import copy

import pytest
import torch

import fp8_scaling as fs
from fp8_scaling import _linear_fn
from fp8_scaling._gpt import GPT, GPTConfig, stdlib_corpus, train_steps

_FP8 = (torch.float8_e4m3fn, torch.float8_e5m2)
CALLS: list[tuple] = []


def strict_scaled_mm(a, b, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None,
                     use_fast_accum=False):  # fmt: skip
    """``scale_a * scale_b * (a @ b)`` rounded once to ``out_dtype`` (the CUDA kernel's maths)."""
    assert a.dtype in _FP8, a.dtype
    assert b.dtype in _FP8, b.dtype
    assert not (a.dtype == b.dtype == torch.float8_e5m2), "e5m2 x e5m2 is not supported"
    assert a.dim() == b.dim() == 2, (a.shape, b.shape)
    assert a.shape[1] == b.shape[0], (a.shape, b.shape)
    assert a.stride(1) == 1, f"A must be row-major: {a.stride()}"
    assert a.stride(0) >= a.shape[1], f"A must be row-major: {a.stride()}"
    assert b.stride(0) == 1, f"B must be column-major: {b.stride()}"
    assert b.stride(1) >= b.shape[0], f"B must be column-major: {b.stride()}"
    assert all(d % 16 == 0 for d in (*a.shape, b.shape[1])), (a.shape, b.shape)
    for s in (scale_a, scale_b):
        assert s.dtype == torch.float32, s.dtype
        assert s.numel() == 1, s.shape
    out_dtype = out_dtype or a.dtype
    assert out_dtype in (torch.bfloat16, torch.float16, torch.float32), out_dtype
    assert bias is None or out_dtype != torch.float32
    CALLS.append((a.dtype, b.dtype, out_dtype, use_fast_accum))
    acc = a.double() @ b.double() * (scale_a.double() * scale_b.double())
    return acc.to(out_dtype)


@pytest.fixture
def gpu_path(monkeypatch):
    CALLS.clear()
    monkeypatch.setattr(torch, "_scaled_mm", strict_scaled_mm, raising=False)
    monkeypatch.setattr(_linear_fn, "hardware_fp8_supported", lambda device: True)
    return CALLS


RECIPES = {
    "jit": fs.JustInTimeScaling(),
    "delayed": fs.DelayedScaling(history_len=4),
    "constant": fs.ConstantScaling(bias=4, grad_bias=14),
}


@pytest.mark.parametrize("name", list(RECIPES))
def test_hw_path_linear_matches_emulation_fp32_master_bf16_autocast(gpu_path, name, sqnr):
    torch.manual_seed(0)
    base = torch.nn.Linear(64, 96)
    torch.nn.init.normal_(base.weight, std=0.02)
    x0 = torch.randn(48, 64)
    dy = torch.randn(48, 96) * 1e-5  # gradient-sized values (bias clipping at +31 for JIT)
    outs = []
    for fast in (True, False):
        lin = fs.Float8Linear.from_linear(copy.deepcopy(base), RECIPES[name])
        x = x0.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = fs.float8_linear(
                x.bfloat16(), lin.weight, lin.bias, lin.recipe, lin.fp8_amax_history, fast
            )
        y.backward(dy.to(y.dtype))
        outs.append([y, x.grad, lin.weight.grad, lin.bias.grad])
    assert len(gpu_path) == 3  # output, grad-input and grad-weight GEMMs all took the GPU branch
    for got, want in zip(*outs):
        assert got.dtype == want.dtype
        assert torch.isfinite(got).all()
        # same FP8 operands and scales; only float64 vs float32 accumulation and one final
        # rounding differ (bf16 outputs: 2**-9 relative, i.e. >= 50 dB)
        assert sqnr(got.float(), want.float()) > 45


@pytest.mark.parametrize(
    ("spec", "want"),
    [("none", (False, False, False)), ("forward", (True, False, False)),
     ("all", (True, True, True)), ("grad_input+grad_weight", (False, True, True)),
     ("output+grad_weight", (True, False, True))],
)  # fmt: skip
def test_fast_accum_reaches_each_gemm(gpu_path, spec, want):
    # the three _scaled_mm calls run in the order output, grad-input, grad-weight
    x = torch.randn(32, 64, dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(48, 64) / 8).bfloat16().requires_grad_(True)
    y = fs.float8_linear(x, w, recipe=fs.JustInTimeScaling(fast_accum=spec), fast=True)
    y.backward(torch.randn_like(y))
    assert tuple(c[3] for c in gpu_path) == want


@pytest.mark.parametrize("bad", ["sometimes", "output+", "grads", "", 1])
def test_fast_accum_rejects_unknown(bad):
    with pytest.raises(ValueError, match="fast_accum must be"):
        fs.JustInTimeScaling(fast_accum=bad)


# JIT in the default suite; the other recipes (same code path, ~3 s each) in the slow one
@pytest.mark.parametrize(
    "name", ["jit", pytest.param("delayed", marks=pytest.mark.slow),
             pytest.param("constant", marks=pytest.mark.slow)],
)  # fmt: skip
def test_hw_path_gpt_three_steps_finite_and_matches_emulation(gpu_path, name):
    data = stdlib_corpus(60_000)
    cfg = GPTConfig(n_layer=1, d_model=32, n_head=2, seq_len=16)
    torch.manual_seed(0)
    base = GPT(cfg)
    losses = {}
    for fast in ("auto", False):
        m = copy.deepcopy(base)
        fs.convert_to_float8(m, RECIPES[name], auto_filter=False)
        for mod in m.modules():
            if isinstance(mod, fs.Float8Linear):
                mod.cast_backend = "auto"
        if fast is False:
            _linear_fn.hardware_fp8_supported = lambda device: False  # undone by monkeypatch
        res = train_steps(m, data[:50_000], 3, 4, 3e-3, 0, "cpu", torch.bfloat16, None,
                          data[50_000:], 2)  # fmt: skip
        losses[fast] = res["train"] + res["val"]
        assert all(p.isfinite().all() for p in m.parameters())
        if fast:
            n_hw = len(gpu_path)
    # 3 GEMMs x 4 linears x 3 training steps, plus the forward GEMMs of the evaluations
    assert n_hw >= 3 * 4 * 3
    assert len(gpu_path) == n_hw
    hw, emu = losses["auto"], losses[False]
    assert all(torch.isfinite(torch.tensor(hw)))
    # identical FP8 operands; float64 vs float32 accumulation changes bf16 roundings only
    assert max(abs(a - b) for a, b in zip(hw, emu)) < 0.02


@pytest.mark.parametrize("threshold", [None, 100, 1])
def test_auto_backend_size_threshold_routes_compiled_casts(monkeypatch, threshold):
    # what "auto" picks while torch.compile traces: inductor's torch ops, or the Triton-kernel
    # ops for JIT tensors of at least AUTO_TRITON_MIN_NUMEL elements; same FP8 bytes either way
    from fp8_scaling._cast_ops import HAS_TRITON_OP

    if not HAS_TRITON_OP:
        pytest.skip("torch.library.triton_op needs torch >= 2.6")
    used = []
    real_cast_tk, real_cast_pow2 = _linear_fn.cast_transpose_tk, _linear_fn.cast_pow2_torch
    monkeypatch.setattr(_linear_fn, "AUTO_TRITON_MIN_NUMEL", threshold)
    monkeypatch.setattr(_linear_fn, "_compiling", lambda: True)
    monkeypatch.setattr(
        _linear_fn, "cast_transpose_tk", lambda *a: used.append("triton") or real_cast_tk(*a)
    )
    monkeypatch.setattr(
        _linear_fn,
        "cast_pow2_torch",
        lambda *a: used.append("inductor") or real_cast_pow2(*a),
    )
    x = torch.randn(16, 32).bfloat16()  # 512 elements
    q = _linear_fn._quant(x, fs.E4M3, 0, fs.JustInTimeScaling(), None, "auto", True)
    assert used == ["triton" if threshold is not None and x.numel() >= threshold else "inductor"]
    ref = fs.quantize(x, torch.exp2(fs.compute_bias(fs.amax(x), fs.E4M3)), fs.E4M3)
    assert torch.equal(q.data.view(torch.uint8), ref.view(torch.uint8))
    assert torch.equal(q.data_t.view(torch.uint8), ref.t().contiguous().view(torch.uint8))


def _pair_vs_triton(compile_pair: bool):
    torch.manual_seed(0)
    base = torch.nn.Linear(64, 96, bias=False).bfloat16()
    x0 = (torch.randn(48, 64) * 30).bfloat16()
    out = {}
    for backend in ("triton", "pair"):
        lin = fs.Float8Linear.from_linear(copy.deepcopy(base), cast_backend=backend)
        compiled = compile_pair and backend == "pair"
        run = torch.compile(lin, fullgraph=True) if compiled else lin
        x = x0.clone().requires_grad_(True)
        y = run(x)
        y.backward(torch.ones_like(y))
        out[backend] = (y, x.grad, lin.weight.grad)
    return out


def test_hw_path_pair_casts_match_per_tensor_casts(gpu_path):
    # cast_backend="pair" (input and weight through one amax and one cast op, the gradient
    # through the one-tensor ops) takes the GPU branch with the same FP8 operands as one cast
    # per tensor: bit-identical output and gradients
    out = _pair_vs_triton(compile_pair=False)
    assert len(gpu_path) == 6
    for a, b in zip(out["pair"], out["triton"]):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_hw_path_pair_compiles_fullgraph(gpu_path):
    # the pair ops are torch.library.triton_op ops: traced without graph breaks
    # (fullgraph=True raises on one); on the CPU their bodies run the torch reference
    from fp8_scaling._cast_ops import HAS_TRITON_OP

    if not HAS_TRITON_OP:
        pytest.skip("torch.library.triton_op needs torch >= 2.6")

    def traced_scaled_mm(a, b, scale_a, scale_b, out_dtype=None, use_fast_accum=False):
        # strict_scaled_mm's call log is a side effect that dynamo refuses inside autograd.Function
        assert a.stride(1) == 1, "A must be row-major"
        assert b.stride(0) == 1, "B must be column-major"
        return (a.double() @ b.double() * (scale_a.double() * scale_b.double())).to(out_dtype)

    torch._dynamo.reset()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "_scaled_mm", traced_scaled_mm)
        out = _pair_vs_triton(compile_pair=True)
    for a, b in zip(out["pair"], out["triton"]):
        assert torch.equal(a, b)


def test_auto_pair_routing_by_size(monkeypatch):
    # "auto" takes the pair kernels for the JIT recipe while the larger of input and weight is
    # below AUTO_PAIR_MAX_NUMEL elements; "pair" always; delayed scaling never
    x, w = torch.zeros(32, 64).bfloat16(), torch.zeros(48, 64).bfloat16()
    jit, fmt = fs.JustInTimeScaling(), fs.E4M3
    assert _linear_fn._pair_ok(x, w, jit, fmt, "auto")
    monkeypatch.setattr(_linear_fn, "AUTO_PAIR_MAX_NUMEL", 48 * 64)
    assert not _linear_fn._pair_ok(x, w, jit, fmt, "auto")
    assert _linear_fn._pair_ok(x, w, jit, fmt, "pair")
    assert not _linear_fn._pair_ok(x, w, fs.DelayedScaling(), fmt, "pair")
    assert not _linear_fn._pair_ok(x.float(), w.float(), jit, fmt, "pair")  # 4-byte inputs
    monkeypatch.setattr(_linear_fn, "AUTO_PAIR", False)
    monkeypatch.setattr(_linear_fn, "AUTO_PAIR_MAX_NUMEL", 1 << 27)
    assert not _linear_fn._pair_ok(x, w, jit, fmt, "auto")
