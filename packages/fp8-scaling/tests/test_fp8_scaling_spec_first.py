"""First pass of the one-pass JIT cast (``_spec_first``) vs the torch reference, odd shapes.

Under ``TRITON_INTERPRET=1`` the kernel writes the saturated scaled float32 values, which torch
then casts (the interpreter's own fp32 -> fp8 rounding differs from the GPU's, as in
test_fp8_scaling_fastcast.py); the amax is compared exactly. The FP8 bytes themselves are
compared on the GPU (benchmarks/cast_bw.py checks every configuration before timing it).
"""

import pytest
import torch

import fp8_scaling as fs
from fp8_scaling._cast_ops import delayed_cast_ref
from fp8_scaling._spec_first import SpecConfig, launch_spec_first, tma_ok

# tiny tiles so that (37, 53) has masked edge tiles in both dimensions; (48, 80) is the
# TMA-aligned shape with a partial column of tiles (80 = 2.5 x 32)
CFGS = [
    SpecConfig(16, 32, 1, 0, 0, 0, 0, 2),
    SpecConfig(16, 32, 1, 2, 1, 0, 2, 2, 2),  # persistent, elementwise amax, 16-bit transpose
    SpecConfig(32, 16, 2, 0, 0, 1, 0, 1),  # tensor descriptors where the shape allows
]


def _x(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 5).to(dtype)


def _run(x, scale, fmt, cfg, transpose=True):
    m, n = x.shape
    q = torch.full((m, n), -7.0)
    qt = torch.full((n, m), -7.0) if transpose else None
    amax = torch.zeros(())
    fmax = fs.get_format(fmt).max
    launch_spec_first(x, scale.reshape(1), q, qt, amax, fmt, fmax, cfg)
    return q, qt, amax


def _same(got, want, fmt):
    dt = fs.get_format(fmt).dtype
    return torch.equal(got.to(dt).view(torch.uint8), want.view(torch.uint8))


CASES = [  # pointer kernels on the odd bf16 shape, the descriptor kernel on the aligned fp16 one
    (CFGS[0], (37, 53), torch.bfloat16),
    (CFGS[1], (37, 53), torch.bfloat16),
    (CFGS[2], (48, 80), torch.float16),
    (SpecConfig(16, 32, 1, 0, 2, 0, 0, 2), (37, 53), torch.bfloat16),  # axis-wise tile max
    (SpecConfig(16, 32, 1, 2, 1, 0, 0, 2, 2, 1), (37, 53), torch.bfloat16),  # float32 bits
]


@pytest.mark.parametrize(("cfg", "shape", "dtype"), CASES, ids=lambda c: str(c))
def test_spec_first_matches_reference(triton_interpret, cfg, shape, dtype):
    x = _x(shape, dtype, 3)
    x.view(-1)[5] = 1e4  # saturates at scale 16 (E4M3 max 448)
    x.view(-1)[11] = -float("inf")  # cast to NaN; amax inf
    scale = torch.tensor(16.0)
    for fmt in ("e4m3", "e5m2"):
        rq, rqt, ra = delayed_cast_ref(x, scale, fmt, True)
        q, qt, amax = _run(x, scale, fmt, cfg)
        assert torch.equal(amax, ra.float())
        assert _same(q, rq, fmt)
        assert _same(qt, rqt, fmt)


def test_spec_first_amax_edges(triton_interpret):
    # NaN counts as inf, all-zero gives 0, the largest finite bf16 is exact; no transpose
    cfg = CFGS[1]
    x = torch.zeros(37, 53, dtype=torch.bfloat16)
    _q, _qt, amax = _run(x, torch.tensor(1.0), "e4m3", cfg, transpose=False)
    assert amax.item() == 0.0
    x[36, 52] = -torch.finfo(torch.bfloat16).max
    _q, _qt, amax = _run(x, torch.tensor(1.0), "e4m3", cfg, transpose=False)
    assert amax.item() == torch.finfo(torch.bfloat16).max
    x[0, 0] = float("nan")
    q, _qt, amax = _run(x, torch.tensor(1.0), "e4m3", cfg, transpose=False)
    assert amax.item() == float("inf")
    assert bool(torch.isnan(q[0, 0]))


def test_spec_config_names_and_tma_rule():
    c = SpecConfig.from_dict({"bm": 64, "bn": 128, "warps": 8, "tma": 1, "kernel": "v3"})
    assert c == SpecConfig(64, 128, 8, 0, 0, 1)
    assert c.name() == "v3_64x128w8p0a0tmat0g8"
    assert tma_ok(8192, 28672)
    assert not tma_ok(37, 64)
    with pytest.raises(ValueError, match="tmode"):
        launch_spec_first(
            torch.ones(4, 4), torch.ones(1), torch.ones(4, 4), None, torch.zeros(()), "e4m3",
            448.0, SpecConfig(tmode=1),
        )  # fmt: skip


def test_one_pass_cast_with_this_first_pass_is_the_jit_cast(triton_interpret):
    # right guess (the first pass's bytes stay), NaN guess (never equal: the check pass recasts):
    # always the two-pass JIT result, with the JIT scale returned for the next step
    from fp8_scaling._fastcast import CastConfig
    from fp8_scaling._speccast import launch_spec_cast, spec_cast_ref

    x = _x((37, 53), torch.bfloat16, 4)
    rq, rqt, rinv, ra, rs = spec_cast_ref(x, None, "e4m3", 1, True)
    tiles = CastConfig(16, 32, 1, 0, 0, 1, 2)
    for guess in (rs, torch.tensor(float("nan"))):
        q, qt, inv, a, s = launch_spec_cast(
            x, "e4m3", guess.reshape(1), 1, True, tiles, True, first=CFGS[1]
        )
        assert torch.equal(a, ra)
        assert torch.equal(inv, rinv)
        assert torch.equal(s, rs)
        assert _same(q, rq, "e4m3")
        assert _same(qt, rqt, "e4m3")


def test_tuned_cast_spec_lookup(tmp_path, monkeypatch):
    # "v3" entries give a SpecConfig, "v2" a tile of the general kernel, anything else None;
    # the nearest element count answers for shapes without an entry; CPU tensors: None
    import json

    from fp8_scaling import _tuned
    from fp8_scaling._fastcast import CastConfig

    spec = {"8192x8192": {"kernel": "v3", "bm": 64, "bn": 128, "warps": 8, "tma": 1, "us": 80},
            "1024x1024": {"kernel": "v2", "bm": 64, "bn": 128, "warps": 8},
            "64x64": {"kernel": "other"}}  # fmt: skip
    path = tmp_path / "tuned.json"
    traced = {"8192x8192": {"kernel": "v3", "bm": 32, "bn": 128, "warps": 4}}
    table = {"GPU A": {"cast_spec": spec, "cast_spec_traced": traced}, "GPU B": {}}
    path.write_text(json.dumps({"format": 1, "gpus": table}))
    monkeypatch.setenv("FP8_SCALING_TUNED", str(path))
    _tuned.reset_table()
    try:
        look = _tuned._spec_lookup
        assert look("GPU A", 8192 * 8192, "8192x8192") == SpecConfig(64, 128, 8, tma=1)
        assert look("GPU A", 16384 * 28672, "16384x28672") == SpecConfig(64, 128, 8, tma=1)
        assert look("GPU A", 1024 * 1024, "1024x1024") == CastConfig(64, 128, 8)
        assert look("GPU A", 64 * 64, "64x64") is None
        assert look("GPU B", 64 * 64, "64x64") is None
        # launches traced by torch.compile: their own entries when the table has them
        assert look("GPU A", 8192 * 8192, "8192x8192", True) == SpecConfig(32, 128, 4)
        assert _tuned.spec_first_config(torch.zeros(8, 8)) is None
    finally:
        monkeypatch.delenv("FP8_SCALING_TUNED")
        _tuned.reset_table()


def test_one_pass_cast_traced_launch_arguments(triton_interpret):
    # the argument plumbing of the launches that torch.compile traces (wrap_triton; here the
    # identity: the one-config autotuners run directly), both first-pass kernels, no transpose
    from fp8_scaling._fastcast import CastConfig
    from fp8_scaling._speccast import launch_spec_cast, spec_cast_ref

    x = _x((37, 53), torch.bfloat16, 6)
    tiles = CastConfig(16, 32, 1, 0, 0, 1, 2)
    for fmt, transpose, first in (("e5m2", True, CFGS[0]), ("e4m3", False, tiles)):
        rq, rqt, rinv, ra, rs = spec_cast_ref(x, None, fmt, 0, transpose)
        for guess in (rs,) if transpose else (rs / 2,):  # the check pass keeps / recasts
            q, qt, inv, a, s = launch_spec_cast(
                x, fmt, guess.reshape(1), 0, transpose, tiles, True, first=first,
                wrap=lambda kernel: kernel,
            )  # fmt: skip
            assert torch.equal(a, ra)
            assert torch.equal(inv, rinv)
            assert torch.equal(s, rs)
            assert _same(q, rq, fmt)
            if transpose:
                assert _same(qt, rqt, fmt)
            else:
                assert qt.numel() == 0


def test_packed_transpose_matches_fp8_tile_transpose(triton_interpret):
    # tmode 3 packs four rows' FP8 bytes into 32-bit words before transposing: its q and qt
    # bytes equal those of tmode 0 (same rounding, here the interpreter's) and qt is q.T;
    # the amax is exact; M % 4 != 0 falls back to tmode 0
    x = _x((36, 53), torch.bfloat16, 7)
    x.view(-1)[9] = float("nan")
    m, n = x.shape
    out = {}
    for tmode, b32 in ((0, 0), (3, 0), (3, 1)):
        q = torch.empty(m, n, dtype=torch.float8_e4m3fn)
        qt = torch.empty(n, m, dtype=torch.float8_e4m3fn)
        amax = torch.zeros(())
        cfg = SpecConfig(16, 32, 1, 2, 1, 0, tmode, 2, 2, b32)  # persistent: several tiles
        launch_spec_first(x, torch.ones(1) * 4, q, qt, amax, "e4m3", 448.0, cfg)
        out[tmode, b32] = (q.view(torch.uint8), qt.view(torch.uint8), amax)
    for key in ((3, 0), (3, 1)):
        assert torch.equal(out[key][0], out[0, 0][0])
        assert torch.equal(out[key][1], out[0, 0][0].t())
        assert out[key][2].item() == float("inf")
    q = torch.empty(37, 53, dtype=torch.float8_e4m3fn)
    qt = torch.empty(53, 37, dtype=torch.float8_e4m3fn)
    amax = torch.zeros(())
    x = _x((37, 53), torch.bfloat16, 8)
    launch_spec_first(x, torch.ones(1), q, qt, amax, "e4m3", 448.0, SpecConfig(16, 32, 1, tmode=3))
    assert torch.equal(qt.view(torch.uint8), q.view(torch.uint8).t())
    assert torch.equal(amax, x.float().abs().max())


LEAN = [
    SpecConfig(16, 32, 1, 2, 1, 0, 0, 2, 2, 0, 1),  # persistent, FP8 tile transposed
    SpecConfig(16, 32, 1, 0, 0, 0, 2, 2, 1, 0, 1),  # one program per tile, 16-bit transpose
]


@pytest.mark.parametrize("cfg", LEAN, ids=lambda c: c.name())
@pytest.mark.parametrize("special", ["none", "inf", "nan", "huge"])
def test_lean_first_pass_one_pass_cast_is_the_jit_cast(triton_interpret, cfg, special):
    # the lean first pass neither clamps nor maps inf to NaN; the check pass must recast
    # whenever that could show: a wrong guess, a non-finite amax, or a bias clipped at -31
    # (1e30 * 2**-31 > 448). The guess equal to the JIT scale is the hard case for the specials.
    from fp8_scaling._fastcast import CastConfig
    from fp8_scaling._speccast import launch_spec_cast, spec_cast_ref

    x = _x((37, 53), torch.bfloat16, 5)
    x.view(-1)[17] = {"none": 3.0, "inf": float("inf"), "nan": float("nan"), "huge": -1e30}[special]
    tiles = CastConfig(16, 32, 1, 0, 0, 1, 2)
    for fmt in ("e4m3", "e5m2"):
        rq, rqt, rinv, ra, rs = spec_cast_ref(x, None, fmt, 0, True)
        for guess in (rs, rs * 2, rs / 2, torch.tensor(float("nan"))):
            q, qt, inv, a, s = launch_spec_cast(
                x, fmt, guess.reshape(1), 0, True, tiles, True, first=cfg
            )
            assert torch.equal(a, ra), (fmt, guess)
            assert torch.equal(s, rs)
            assert torch.equal(inv, rinv)
            assert _same(q, rq, fmt), (fmt, guess)
            assert _same(qt, rqt, fmt), (fmt, guess)


def test_lean_needs_the_pointer_kernel():
    with pytest.raises(ValueError, match="lean"):
        launch_spec_first(
            torch.ones(4, 4), torch.ones(1), torch.ones(4, 4), torch.ones(4, 4), torch.zeros(()),
            "e4m3", 448.0, SpecConfig(tmode=3, lean=1),
        )  # fmt: skip
    assert SpecConfig(32, 128, 4, 16, 1, 0, 0, 8, 3, 0, 1).name() == "v3_32x128w4p16a1t0g8s3l"
