"""The pair kernels (input and weight amax in one launch, both casts in one launch) vs the
per-tensor torch references, under ``TRITON_INTERPRET=1`` on tiny odd shapes.

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


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_pair_kernels_match_reference_odd_shapes(triton_interpret, fmt):
    from fp8_scaling._pair import launch_amax_pair, launch_cast_pair

    a, b = _t((37, 53), 0, 300.0), _t((21, 53), 1, 0.01)  # biases far apart
    a[3, 4] = float("nan")  # counts as inf: a's bias clips to -31 and its values become NaN
    am = launch_amax_pair(a, b)
    assert am.shape == (2,)
    assert am[0] == float("inf")
    assert am[1] == fs.amax(b)
    a[3, 4] = 1.0
    am = launch_amax_pair(a, b)
    assert torch.equal(am, torch.stack([fs.amax(a), fs.amax(b)]))
    f = fs.get_format(fmt)
    cfg = CastConfig(bm=16, bn=32, warps=1, group=2)  # masked edge tiles in both tensors
    for ta, tb in ((True, True), (True, False), (False, True)):
        qa, qta, qb, qtb, inv = launch_cast_pair(
            a, b, am, fmt, f.max, 1, ta, tb, cfg, out_fp32=True
        )
        for q, qt, x, i, t in ((qa, qta, a, 0, ta), (qb, qtb, b, 1, tb)):
            rq, rqt, rinv = cast_transpose_ref(x, am[i], fmt, 1, t)
            assert inv[i] == rinv
            assert torch.equal(q.to(f.dtype).view(torch.uint8), rq.view(torch.uint8))
            assert qt.shape == rqt.shape
            if t:
                assert torch.equal(qt.to(f.dtype).view(torch.uint8), rqt.view(torch.uint8))


def test_pair_reference_path_and_errors():
    from fp8_scaling._pair import launch_amax_pair

    a, b = _t((8, 16), 2, 1.0), _t((4, 16), 3, 2.0)
    am = amax_pair_impl(a, b)  # CPU tensors outside the interpreter: the torch reference
    assert torch.equal(am, torch.stack([fs.amax(a), fs.amax(b)]))
    qa, qta, _, qtb, inv = cast_pair_impl(a, b, am, "e4m3", 0, True, False)
    ra = cast_transpose_ref(a, am[0], "e4m3", 0, True)
    assert torch.equal(qa.view(torch.uint8), ra[0].view(torch.uint8))
    assert torch.equal(qta.view(torch.uint8), ra[1].view(torch.uint8))
    assert qtb.shape == (0, 0)
    assert inv[0] == ra[2]
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
