"""Checks that need an FP8-capable CUDA GPU (Hopper): Triton bytes, _scaled_mm vs emulation."""

import pytest
import torch

import fp8_scaling as fs
from fp8_scaling._cast_ops import (
    amax_op,
    cast_transpose_op,
    cast_transpose_ref,
    delayed_cast_op,
    delayed_cast_ref,
)

pytestmark = pytest.mark.gpu


def _need_fp8():
    if not torch.cuda.is_available() or not fs.hardware_fp8_supported(torch.device("cuda")):
        pytest.skip("needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])  # float32: master weights
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("shape", [(1, 1), (37, 53), (128, 256), (1000, 3000), (3072, 768)])
def test_gpu_cast_kernels_bit_exact(fmt, shape, dtype):
    _need_fp8()
    x = (torch.randn(shape, device="cuda") * 7).to(dtype)
    a = amax_op(x)
    assert torch.equal(a, x.float().abs().max())
    got, want = cast_transpose_op(x, a, fmt, 0, True), cast_transpose_ref(x, a, fmt, 0, True)
    for g, w in zip(got, want):
        assert torch.equal(
            g.view(torch.uint8) if g.dtype != torch.float32 else g,
            w.view(torch.uint8) if w.dtype != torch.float32 else w,
        )
    s = torch.tensor(8.0, device="cuda")
    got, want = delayed_cast_op(x, s, fmt, True), delayed_cast_ref(x, s, fmt, True)
    for g, w in zip(got, want):
        assert torch.equal(
            g.view(torch.uint8) if g.dtype != torch.float32 else g,
            w.view(torch.uint8) if w.dtype != torch.float32 else w,
        )


def test_gpu_scaled_mm_matches_emulation():
    _need_fp8()
    torch.manual_seed(0)
    m, k, n = 256, 512, 384
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(n, k, device="cuda") / k**0.5).to(torch.bfloat16).requires_grad_(True)
    dy = torch.randn(m, n, device="cuda", dtype=torch.bfloat16)
    outs = []
    for fast in (True, False):
        x.grad = w.grad = None
        y = fs.float8_linear(x, w, recipe=fs.JustInTimeScaling(fast_accum="none"), fast=fast)
        y.backward(dy)
        outs.append((y.float(), x.grad.float(), w.grad.float()))
    for a, b in zip(*outs):
        # same FP8 operands; only the fp32 accumulation order differs, then one bf16 rounding
        rel = ((a - b).norm() / b.norm()).item()
        assert rel < 1e-2, rel


@pytest.mark.parametrize("backend", ["auto", "triton", "pair", "spec"])
def test_gpu_compile_fullgraph_no_breaks(backend):
    _need_fp8()
    torch.manual_seed(0)
    lin = fs.Float8Linear(256, 512, device="cuda", dtype=torch.bfloat16, cast_backend=backend)
    x = torch.randn(128, 256, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    y_eager = lin(x)
    y_eager.sum().backward()
    g_eager = x.grad.clone()
    x.grad = None
    torch._dynamo.reset()
    y = torch.compile(lin, fullgraph=True)(x)  # fullgraph=True raises on any graph break
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    # same FP8 operands (the casts are bit-exact in every backend) and the same cuBLAS GEMMs
    assert torch.equal(y, y_eager)
    assert torch.equal(x.grad, g_eager)


def _poison_allocator():
    """Fill the caching allocator's free blocks with NaN bytes, so a buffer that a kernel
    should have written but did not shows up as garbage instead of a stale correct copy."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    junk = torch.full((64 << 20,), float("nan"), device="cuda")  # 256 MB of NaN
    del junk


def _train_steps(backend, shape, factors, compiled):
    """A bf16 ``Float8Linear`` with ``cast_backend=backend`` (compiled if asked) run forward and
    backward once per factor f, on inputs and output gradients scaled by f, each step on a
    poisoned allocator: ``(module, [[y, dx, dw] per step])``. Same seed, same data per backend."""
    m, k, n = shape
    torch.manual_seed(0)
    w = (torch.randn(n, k, device="cuda") * 0.01).to(torch.bfloat16)
    x0 = (torch.randn(m, k, device="cuda") * 30).to(torch.bfloat16)
    dy = torch.randn(m, n, device="cuda").to(torch.bfloat16)
    lin = fs.Float8Linear(k, n, bias=False, device="cuda", dtype=torch.bfloat16,
                          cast_backend=backend)  # fmt: skip
    with torch.no_grad():
        lin.weight.copy_(w)
    run = torch.compile(lin, fullgraph=True) if compiled else lin
    res = []
    for f in factors:
        _poison_allocator()
        x = (x0 * f).requires_grad_(True)
        lin.weight.grad = None
        y = run(x)
        y.backward(dy * f)
        res.append([y.clone(), x.grad.clone(), lin.weight.grad.clone()])
    return lin, res


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("shape", [(208, 272, 400), (512, 256, 512), (256, 256, 256)])
def test_gpu_pair_casts_match_per_tensor_casts(shape, compiled):
    """cast_backend="pair" (x and w in one amax and one cast launch; the gradient through the
    one-tensor launch) gives the same FP8 operands as one launch per tensor, hence bit-identical
    outputs and gradients, eager and compiled; shapes where x and w have the same shape
    included (a compiled launch once returned an unwritten buffer there)."""
    _need_fp8()
    torch._dynamo.reset()
    # the candidate first, on a poisoned allocator; the second call runs the cached compiled code
    _, got = _train_steps("pair", shape, (1.0, 1.0), compiled)
    _, want = _train_steps("triton", shape, (1.0, 1.0), False)
    for ra, rb in zip(got, want):
        for a, b in zip(ra, rb):
            assert torch.equal(a, b)


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("shape", [(37, 53), (1000, 3000), (1024, 2048)])
def test_gpu_spec_cast_bit_exact(fmt, shape):
    """The one-pass JIT cast gives the two-pass JIT bytes whatever the guess: right (one pass),
    off by 2 either way or NaN (the recast runs), and with NaN in the input."""
    from fp8_scaling._speccast import spec_cast_op

    _need_fp8()
    x = (torch.randn(shape, device="cuda") * 7).to(torch.bfloat16)
    for nan in (False, True):
        if nan:  # NaN counts as inf in the amax; the NaN itself stays NaN
            x[shape[0] // 2, shape[1] // 3] = float("nan")
        a = amax_op(x)
        want = cast_transpose_op(x, a, fmt, 1, True)  # the two-pass kernels (bit-exact, above)
        right = want[2].reciprocal()
        for guess in (right, right * 2, right / 2, torch.full_like(right, float("nan"))):
            _poison_allocator()
            q, qt, inv, am, scale = spec_cast_op(x, guess.reshape(1), fmt, 1, True)
            assert torch.equal(am, a)
            assert torch.equal(inv, want[2])
            assert torch.equal(scale, right)
            assert torch.equal(q.view(torch.uint8), want[0].view(torch.uint8))
            assert torch.equal(qt.view(torch.uint8), want[1].view(torch.uint8))


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("shape", [(37, 53), (1000, 3000), (1024, 2048)])
def test_gpu_spec_first_pass_bit_exact(fmt, shape):
    """The first-pass kernel of _spec_first (bit-pattern amax accumulated elementwise, the
    shipped and two other persistent configurations) inside the one-pass cast gives the
    two-pass JIT bytes."""
    from fp8_scaling._spec_first import SpecConfig
    from fp8_scaling._speccast import launch_spec_cast

    _need_fp8()
    # configurations the H200 runs 18-20 verified (persistent, pipelined, elementwise amax)
    firsts = [SpecConfig(64, 128, 8, 8, 1, 0, 0, 8, 3), SpecConfig(32, 128, 4, 8, 1, 0, 0, 8, 3)]
    firsts.append(SpecConfig(64, 128, 8, 4, 1, 0, 2, 8, 3))  # 16-bit transposition
    # lean first passes (run 26's table): no clamp, no inf/NaN test; a finite input with the
    # right guess keeps their bytes, -inf and a huge value (bias clipped at -31) force the recast
    firsts += [SpecConfig(64, 128, 4, 16, 1, 0, 0, 8, 3, 0, 1)]
    firsts += [SpecConfig(64, 128, 8, 16, 1, 0, 0, 8, 3, 0, 1)]
    for special in (None, float("-inf"), 3e38):
        x = (torch.randn(shape, device="cuda") * 7).to(torch.bfloat16)
        if special is not None:
            x[0, 1] = special
        a = amax_op(x)
        want = cast_transpose_op(x, a, fmt, 0, True)
        right = want[2].reciprocal()
        for first in firsts:
            for guess in (right, right * 2, right / 2):
                _poison_allocator()
                q, qt, inv, am, scale = launch_spec_cast(
                    x, fmt, guess.reshape(1), 0, True, first=first
                )
                assert torch.equal(inv, want[2])
                assert torch.equal(am, a)
                assert torch.equal(scale, right)
                why = (first, special)
                assert torch.equal(q.view(torch.uint8), want[0].view(torch.uint8)), why
                assert torch.equal(qt.view(torch.uint8), want[1].view(torch.uint8)), why


def test_gpu_spec_route_as_triton_op_matches_per_tensor_casts(monkeypatch):
    """Compiled, the one-pass casts as triton_op (launched from inductor's code) give the same
    outputs and gradients as the two-pass casts."""
    from fp8_scaling import _linear_fn

    _need_fp8()
    torch._dynamo.reset()
    monkeypatch.setattr(_linear_fn, "SPEC_TRITON_OP", True)
    factors = (1.0, 5.0, 5.0, 0.1)
    _lin, got = _train_steps("spec", (208, 272, 400), factors, True)
    _, want = _train_steps("triton", (208, 272, 400), factors, False)
    for ra, rb in zip(got, want):
        for a, b in zip(ra, rb):
            assert torch.equal(a, b)


@pytest.mark.parametrize("compiled", [False, True])
def test_gpu_spec_route_matches_per_tensor_casts(compiled):
    """cast_backend="spec" (one-pass JIT casts reusing the last scale) gives bit-identical
    outputs and gradients to the two-pass casts, over steps where the scales change."""
    _need_fp8()
    torch._dynamo.reset()
    factors = (1.0, 5.0, 5.0, 0.1)  # scales change at steps 1 and 3, hold at 2
    lin, got = _train_steps("spec", (208, 272, 400), factors, compiled)
    assert torch.all(lin.fp8_scale_guess != 1.0)  # updated to the last scales
    _, want = _train_steps("triton", (208, 272, 400), factors, False)
    for ra, rb in zip(got, want):
        for a, b in zip(ra, rb):
            assert torch.equal(a, b)


def test_gpu_odd_shapes_fall_back():
    _need_fp8()
    lin = fs.Float8Linear(100, 30, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(7, 100, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    y = lin(x)
    y.sum().backward()
    ref = torch.nn.functional.linear(x.float(), lin.weight.float(), lin.bias.float())
    assert ((y.float() - ref).norm() / ref.norm()).item() < 0.1


@pytest.mark.parametrize("name", ["jit", "delayed", "constant"])
def test_gpu_cuda_graph_training_matches_eager(name):
    """The CUDA-graph training loop replays the same kernels as the eager loop."""
    _need_fp8()
    import copy

    from fp8_scaling._gpt import GPT, GPTConfig, stdlib_corpus, train_steps
    from fp8_scaling.train_demo import RECIPES

    torch.manual_seed(0)
    data = stdlib_corpus(200_000)
    base = GPT(GPTConfig(n_layer=2, d_model=128, n_head=4, seq_len=64)).cuda()
    runs = []
    for graph in (False, True):
        model = fs.convert_to_float8(copy.deepcopy(base), RECIPES[name], auto_filter=False)
        rec = fs.ScaleRecorder(model, every=5)
        res = train_steps(model, data, 12, batch_size=8, lr=1e-3, device="cuda",
                          autocast_dtype=torch.bfloat16, val_data=data[-20_000:], val_every=6,
                          cuda_graph=graph, recorder=rec)  # fmt: skip
        runs.append((res, len(rec.to_records())))
    (eager, n_e), (graphed, n_g) = runs
    assert graphed["cuda_graph"]
    assert n_g == n_e  # steps 0, 5 and 10 recorded (eagerly) in both loops
    assert all(torch.isfinite(torch.tensor(graphed["train"] + graphed["val"])))
    # identical kernels on identical data: expected bit-identical; 1 % allows cuBLAS to pick
    # another algorithm under capture (another fp32 summation order, amplified by 12 updates
    # and possibly flipping a power-of-two scale), far below what a wrong kernel does (NaN or
    # a jump of the loss by tens of per cent)
    a, b = torch.tensor(graphed["train"]), torch.tensor(eager["train"])
    assert ((a - b).abs() / b.abs()).max().item() < 1e-2


@pytest.mark.parametrize("algo", ["max", "most_recent"])
def test_gpu_delayed_fused_history_matches_emulation(algo):
    """The fused delayed-scale and history-push kernels keep the same history as the torch ops."""
    _need_fp8()
    torch.manual_seed(0)
    recipe = fs.DelayedScaling(history_len=4, algo=algo, fast_accum="none")
    x = torch.randn(64, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(96, 128, device="cuda") / 11).to(torch.bfloat16).requires_grad_(True)
    dy = torch.randn(64, 96, device="cuda", dtype=torch.bfloat16) * 1e-3
    hists, ys = [], []
    for fast in (True, False):  # fused kernels + _scaled_mm, then the emulation
        hist = torch.zeros(3, 4, device="cuda")
        for _ in range(3):  # same inputs each step: the amaxes, so the histories, are exact
            y = fs.float8_linear(x, w, recipe=recipe, history=hist, fast=fast)
            y.backward(dy)
        hists.append(hist)
        ys.append(y.float())
    assert torch.equal(hists[0], hists[1])
    # same FP8 operands; the fp32 accumulation order differs, then one bf16 rounding
    assert ((ys[0] - ys[1]).norm() / ys[1].norm()).item() < 1e-2


@pytest.mark.parametrize("tmode", [0, 1, 2])
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("shape", [(37, 53), (1000, 3000), (1024, 2048)])
def test_gpu_fastcast_bit_exact(tmode, fmt, shape):
    # the tunable kernels write the same FP8 bytes as the torch reference in every mode
    _need_fp8()
    from fp8_scaling._fastcast import CastConfig, launch_cast2

    x = (torch.randn(shape, device="cuda") * 7).to(torch.bfloat16)
    f = fs.get_format(fmt)
    a = x.float().abs().max()
    s = torch.tensor(8.0, device="cuda")
    for cfg in (CastConfig(128, 128, 8, tmode), CastConfig(64, 128, 4, tmode, 4, 2)):
        q, qt, inv, _ = launch_cast2(x, fmt, f.max, cfg, amax=a)
        want = cast_transpose_ref(x, a, fmt, 0, True)
        assert torch.equal(inv, want[2])
        for g, w in zip((q, qt), want[:2]):
            assert torch.equal(g.view(torch.uint8), w.view(torch.uint8))
        q, qt, _, am = launch_cast2(x, fmt, f.max, cfg, scale=s)
        want = delayed_cast_ref(x, s, fmt, True)
        assert torch.equal(am, want[2])
        for g, w in zip((q, qt), want[:2]):
            assert torch.equal(g.view(torch.uint8), w.view(torch.uint8))
