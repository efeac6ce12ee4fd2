"""Triton kernels vs their pure-torch references, under TRITON_INTERPRET=1 on odd shapes.

The interpreter's own fp32 -> fp8 rounding differs from the GPU's on values whose rounding
carries into the next binade, so the cast kernel is checked through ``out_fp32=True`` (it writes
the scaled, saturated float32 values) and torch casts those; the FP8 bytes are checked on the GPU
(test_fp8_scaling_gpu.py).
"""

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

SHAPES = [(1, 1), (3, 17), (37, 53), (16, 48)]


def _x(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 5).to(torch.bfloat16)


@pytest.mark.parametrize("shape", SHAPES)
def test_amax_kernel(triton_interpret, shape):
    from fp8_scaling._kernels import launch_amax

    x = _x(shape)
    assert torch.equal(launch_amax(x), fs.amax(x))
    x.view(-1)[-1] = float("nan")
    assert launch_amax(x) == float("inf")  # NaN counts as inf, as in the reference


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("shape", SHAPES)
def test_cast_transpose_kernel_jit(triton_interpret, fmt, shape):
    from fp8_scaling._kernels import launch_cast_transpose

    x = _x(shape, 1)
    a = fs.amax(x)
    f = fs.get_format(fmt)
    q, qt, inv, _ = launch_cast_transpose(x, fmt, f.max, amax=a, margin=1, out_fp32=True)
    rq, rqt, rinv = cast_transpose_ref(x, a, fmt, 1, True)
    assert torch.equal(inv, rinv)
    assert torch.equal(q.to(f.dtype).view(torch.uint8), rq.view(torch.uint8))
    assert torch.equal(qt.to(f.dtype).view(torch.uint8), rqt.view(torch.uint8))


@pytest.mark.parametrize("shape", SHAPES)
def test_delayed_kernel_accumulates_amax(triton_interpret, shape):
    from fp8_scaling._kernels import launch_cast_transpose

    x = _x(shape, 2)
    x.view(-1)[0] = 1e4  # saturates with scale 8: the delayed bias is stale
    s = torch.tensor(8.0)
    q, qt, inv, am = launch_cast_transpose(x, "e4m3", 448.0, scale=s, out_fp32=True)
    rq, _rqt, ram = delayed_cast_ref(x, s, "e4m3", True)
    assert torch.equal(am, ram)
    assert inv == 1 / 8
    assert torch.equal(q.to(torch.float8_e4m3fn).view(torch.uint8), rq.view(torch.uint8))
    assert torch.equal(qt.t().to(torch.float8_e4m3fn).view(torch.uint8), rq.view(torch.uint8))


def test_custom_ops_compile_without_graph_breaks():
    x = _x((8, 32))

    def f(x):
        a = amax_op(x)
        q, qt, inv = cast_transpose_op(x, a, "e4m3", 0, True)
        q2, _, a2 = delayed_cast_op(x, 1.0 / inv, "e5m2", False)
        return q.float().sum() + qt.float().sum() + q2.float().sum() + a2

    torch._dynamo.reset()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(x)  # raises on graph breaks
    assert torch.equal(got, f(x))
    with pytest.raises(ValueError, match="2-D"):
        cast_transpose_op(x.reshape(-1), fs.amax(x), "e4m3", 0, True)


def test_custom_op_fake_impls():
    x = _x((5, 7))
    for op, args in [
        (torch.ops.fp8_scaling.amax.default, (x,)),
        (torch.ops.fp8_scaling.cast_transpose.default, (x, fs.amax(x), "e4m3", 0, True)),
        (torch.ops.fp8_scaling.delayed_cast.default, (x, torch.tensor(2.0), "e5m2", True)),
    ]:
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("delayed", [False, True])
def test_cast_transpose_copy_is_exact_transpose(triton_interpret, dtype, delayed):
    # float32 inputs (float32 master weights) take the transposed copy from the row-major cast:
    # the in-kernel transposed write gave a wrong copy for them on the H200 (GPT training NaN)
    from fp8_scaling._kernels import launch_cast_transpose

    x = (torch.randn(37, 53) * 3).to(dtype)
    kw = {"scale": torch.tensor(4.0)} if delayed else {"amax": fs.amax(x)}
    q, qt, _inv, _ = launch_cast_transpose(x, "e4m3", 448.0, **kw)
    assert q.dtype == qt.dtype == torch.float8_e4m3fn
    assert torch.equal(qt.view(torch.uint8), q.t().contiguous().view(torch.uint8))


@pytest.mark.parametrize("tiles", [(32, 16, 2), (16, 32, 3), (64, 64, 8)])
@pytest.mark.parametrize("delayed", [False, True])  # JIT walks the tiles in reverse order
def test_cast_transpose_other_tilings(triton_interpret, tiles, delayed):
    # the GPU autotunes the tiling; every tiling (grouped order, partial edge tiles, reversed
    # walk) must write the same values in both layouts as the reference
    from fp8_scaling._kernels import launch_cast_transpose

    x = _x((70, 45), 3)
    a = fs.amax(x)
    kw = {"scale": torch.tensor(2.0)} if delayed else {"amax": a}
    q, qt, _inv, am = launch_cast_transpose(
        x, "e5m2", 57344.0, **kw, out_fp32=True, _interp_tiles=tiles
    )
    ref = (
        delayed_cast_ref(x, torch.tensor(2.0), "e5m2", True)[0]
        if delayed
        else cast_transpose_ref(x, a, "e5m2", 0, True)[0]
    )
    assert torch.equal(q.to(torch.float8_e5m2).view(torch.uint8), ref.view(torch.uint8))
    assert torch.equal(qt.t().to(torch.float8_e5m2).view(torch.uint8), ref.view(torch.uint8))
    assert torch.equal(am, a)


@pytest.mark.parametrize("n", [255, 256, 257, 1000])  # around the CPU block of 256 elements
def test_amax_kernel_full_blocks_and_tail(triton_interpret, n):
    from fp8_scaling._kernels import launch_amax

    x = _x((n,), 4)
    for pos in (0, n // 2, n - 1):  # the maximum in the first, a middle or the partial block
        y = x.clone()
        y[pos] = 1e3
        assert launch_amax(y).item() == 1e3


def test_triton_op_casts_match_reference_and_compile():
    # the ops used by cast_backend="triton" under torch.compile (torch >= 2.6); on the CPU they
    # run the torch reference, so this checks their registration and tracing, not the kernels
    from fp8_scaling._cast_ops import HAS_TRITON_OP, amax_tk, cast_transpose_tk

    if not HAS_TRITON_OP:
        pytest.skip("torch.library.triton_op needs torch >= 2.6")
    x = _x((24, 40), 5)

    def f(x):
        return cast_transpose_tk(x, amax_tk(x), "e5m2", 1, True)

    want = cast_transpose_ref(x, fs.amax(x), "e5m2", 1, True)
    torch._dynamo.reset()
    for got in (f(x), torch.compile(f, fullgraph=True, backend="aot_eager")(x)):
        for g, w in zip(got, want):
            assert torch.equal(
                g.view(torch.uint8) if g.dtype != torch.float32 else g,
                w.view(torch.uint8) if w.dtype != torch.float32 else w,
            )


@pytest.mark.parametrize("algo", ["max", "most_recent"])
@pytest.mark.parametrize("margin", [0, 2])
@pytest.mark.parametrize(
    "row",
    [
        [0.0, 0.0, 0.0],  # nothing recorded: the initial bias
        [3.0, 0.0, 0.0],
        [0.0, 700.0, 2.5],  # newest amax exactly 0: most_recent clips to +31
        [1e-3, 448.0, 449.0],  # around the E4M3 maximum
        [1e-42, 0.0, 0.0],  # float32 subnormal
    ],
)
def test_delayed_scale_kernel_matches_history_bias(triton_interpret, algo, margin, row):
    from fp8_scaling._kernels import launch_delayed_scale
    from fp8_scaling._linear_fn import history_bias

    recipe = fs.DelayedScaling(history_len=3, algo=algo, init_bias=-3)
    hist = torch.tensor(row, dtype=torch.float32)
    scale, inv = launch_delayed_scale(hist, 448.0, margin, algo == "most_recent", -3)
    b = history_bias(hist, recipe, fs.E4M3, margin)
    assert torch.equal(scale, torch.exp2(b))
    assert torch.equal(inv, torch.exp2(-b))


@pytest.mark.parametrize("length", [1, 2, 5])
def test_push_kernel_matches_reference(triton_interpret, length):
    from fp8_scaling._kernels import launch_push
    from fp8_scaling._linear_fn import _push

    for a in (7.5, 0.0, float("inf"), float("nan")):  # non-finite amaxes are not pushed
        got = torch.arange(1.0, length + 1)
        want = got.clone()
        launch_push(got, torch.tensor(a))
        _push(want, torch.tensor(a))
        assert torch.equal(got, want)
