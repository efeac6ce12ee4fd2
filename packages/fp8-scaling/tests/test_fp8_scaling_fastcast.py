"""The tunable cast kernels (``_fastcast``) vs their torch references, and the tuned table.

Kernels run under ``TRITON_INTERPRET=1`` on tiny odd shapes; as in test_fp8_scaling_kernels.py
they write the saturated scaled float32 values (``out_fp32=True``) and torch casts those,
because the interpreter's own fp32 -> fp8 rounding differs from the GPU's. The FP8 bytes are
compared on the GPU by ``benchmarks/sweep_cast.py`` (every configuration, before timing it).
"""

import json

import pytest
import torch

import fp8_scaling as fs
from fp8_scaling import _tuned
from fp8_scaling._cast_ops import cast_transpose_ref, delayed_cast_ref
from fp8_scaling._fastcast import AmaxConfig, CastConfig
from fp8_scaling._spec_first import SpecConfig


def _x(shape, seed=0, spike=True):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 5).to(torch.bfloat16)
    if spike:
        x.view(-1)[x.numel() // 2] = 3e3  # saturates in the delayed cast (scale 8)
    return x


def _check(x, fmt, cfg, margin=1):
    from fp8_scaling._fastcast import launch_cast2

    f = fs.get_format(fmt)
    a = fs.amax(x)
    q, qt, inv, _ = launch_cast2(x, fmt, f.max, cfg, amax=a, margin=margin, out_fp32=True)
    rq, rqt, rinv = cast_transpose_ref(x, a, fmt, margin, True)
    assert torch.equal(inv, rinv)
    assert torch.equal(q.to(f.dtype).view(torch.uint8), rq.view(torch.uint8))
    assert torch.equal(qt.to(f.dtype).view(torch.uint8), rqt.view(torch.uint8))
    s = torch.tensor(8.0)
    q, qt, inv, am = launch_cast2(x, fmt, f.max, cfg, scale=s, out_fp32=True)
    rq, rqt, ram = delayed_cast_ref(x, s, fmt, True)
    assert torch.equal(am, ram)  # the amax accumulated in the same pass
    assert inv == 1 / 8
    assert torch.equal(q.to(f.dtype).view(torch.uint8), rq.view(torch.uint8))
    assert torch.equal(qt.to(f.dtype).view(torch.uint8), rqt.view(torch.uint8))


# (tile rows, tile cols, warps, transposition mode, programs per SM, stages, group): masked
# edge tiles, all three ways of forming the transposed tile, one tile per program and a
# persistent grid-stride walk (waves=1: one program on the CPU walks every tile)
CFGS = [
    CastConfig(16, 32, 1, 0, 0, 1, 2),
    CastConfig(32, 16, 1, 2, 1, 2, 1),
    CastConfig(16, 16, 1, 1, 1, 1, 8),
]


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name())
def test_fastcast_matches_reference_odd_shape(triton_interpret, cfg):
    _check(_x((37, 53), 1), "e4m3", cfg)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (32, 64), (50, 130)])
@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name())
def test_fastcast_matches_reference_all(triton_interpret, cfg, shape, fmt):
    _check(_x(shape, 2), fmt, cfg)


def test_fastcast_special_values_and_errors(triton_interpret):
    from fp8_scaling._fastcast import launch_cast2

    x = _x((16, 32), 3)
    x[0, 0], x[1, 1], x[2, 2] = float("inf"), float("-inf"), float("nan")
    cfg = CFGS[0]
    q, qt, _inv, am = launch_cast2(x, "e4m3", 448.0, cfg, scale=torch.tensor(1.0), out_fp32=True)
    rq, _, ram = delayed_cast_ref(x, torch.tensor(1.0), "e4m3", True)
    assert am == ram == float("inf")  # NaN counts as inf
    assert torch.equal(q.to(rq.dtype).view(torch.uint8), rq.view(torch.uint8))
    assert torch.equal(qt.t().to(rq.dtype).view(torch.uint8), rq.view(torch.uint8))
    with pytest.raises(ValueError, match="bf16/fp16"):
        launch_cast2(x.float(), "e4m3", 448.0, cfg, amax=fs.amax(x))
    with pytest.raises(ValueError, match="e4m3"):
        launch_cast2(x, "e4m3fnuz", 240.0, cfg, amax=fs.amax(x))
    with pytest.raises(ValueError, match="amax"):
        launch_cast2(x, "e4m3", 448.0, cfg)
    with pytest.raises(ValueError, match="tmode"):
        launch_cast2(x, "e4m3", 448.0, CastConfig(tmode=3), amax=fs.amax(x))


@pytest.mark.parametrize(
    "cfg", [AmaxConfig(64, 1, 1), AmaxConfig(32, 1, 0), AmaxConfig(16, 1, 1, 3)], ids=str
)
def test_amax2_kernel(triton_interpret, cfg):
    from fp8_scaling._fastcast import launch_amax2

    for n in (1, 31, 32, 100):  # below, at and above one block; full blocks and the tail
        x = _x((n,), n, spike=False)
        for pos in (0, n - 1):
            y = x.clone()
            y[pos] = -1e3
            assert launch_amax2(y, cfg).item() == 1e3
        y[n // 2] = float("nan")
        assert launch_amax2(y, cfg).item() == float("inf")
    assert launch_amax2(torch.empty(0, dtype=torch.bfloat16), cfg).item() == 0.0


@pytest.fixture
def table(tmp_path, monkeypatch):
    def write(content):
        path = tmp_path / "tuned.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        monkeypatch.setenv("FP8_SCALING_TUNED", str(path))
        _tuned.reset_table()

    yield write
    monkeypatch.delenv("FP8_SCALING_TUNED")
    _tuned.reset_table()


def test_tuned_table_lookup(table, monkeypatch):
    big = {"kernel": "v2", "bm": 64, "bn": 128, "warps": 4, "tmode": 2, "us": 70.0}
    table(
        {
            "format": 1,
            "gpus": {
                "GPU A": {
                    "cast_jit": {"8192x8192": big, "1024x1024": {"kernel": "legacy"}},
                    "amax": {"67108864": {"kernel": "v2", "block": 4096, "warps": 4}},
                    "compiled_ok": True,
                },
                "GPU C": {"cast_jit": {"8x8": big}, "compiled_ok": False},
            },
        }
    )
    look = _tuned._lookup
    assert look("GPU A", "cast_jit", 8192 * 8192, "8192x8192") == CastConfig(64, 128, 4, 2)
    # unknown shape: the nearest element count (16384x8192 is nearer 8192^2 than 1024^2)
    assert look("GPU A", "cast_jit", 16384 * 8192, "16384x8192") == CastConfig(64, 128, 4, 2)
    assert look("GPU A", "cast_jit", 2048 * 512, "2048x512") is None  # nearest says legacy
    assert look("GPU A", "cast_delayed", 100, "10x10") is None  # no entries of this kind
    assert look("GPU B", "cast_jit", 100, "10x10") is None  # another GPU: the safe default
    assert look("GPU A", "amax", 1000, "1000") == AmaxConfig(4096, 4, 8)
    # a GPU whose compiled check failed keeps the self-tuning kernels under torch.compile only
    assert look("GPU C", "cast_jit", 64, "8x8") == CastConfig(64, 128, 4, 2)
    assert look("GPU C", "cast_jit", 64, "8x8", True) is None
    # CPU tensors never use the table
    assert _tuned.cast_config(torch.zeros(8, 8), delayed=False) is None
    assert _tuned.amax_config(torch.zeros(8)) is None


@pytest.mark.parametrize("content", ["not json", "[]", '{"gpus": 3}'])
def test_tuned_table_unreadable_is_empty(table, content):
    table(content)
    assert _tuned.load_table() == {}
    assert _tuned._lookup("NVIDIA H200", "cast_jit", 64, "8x8") is None


def test_packaged_table_is_valid():
    # the shipped table parses and every entry builds a configuration (or says legacy)
    _tuned.reset_table()
    t = _tuned.load_table()
    for gpu, kinds in t.get("gpus", {}).items():
        for kind, entries in kinds.items():
            if kind == "compiled_ok":
                assert isinstance(entries, bool)
                continue
            for key, e in entries.items():
                if kind.startswith("cast_spec"):  # first pass of the one-pass cast
                    assert e.get("kernel") in ("v2", "v3"), (gpu, kind, key)
                    cfg = (SpecConfig if e["kernel"] == "v3" else CastConfig).from_dict(e)
                    assert cfg.bm * cfg.bn >= 1024
                    continue
                assert e.get("kernel") in ("v2", "legacy"), (gpu, kind, key)
                if e["kernel"] == "v2":
                    cls = AmaxConfig if kind == "amax" else CastConfig
                    cfg = cls.from_dict(e)
                    if cls is CastConfig:
                        assert cfg.bm * cfg.bn >= 1024
                        assert cfg.tmode in (0, 1, 2)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION:UserWarning")  # newer Triton
def test_fastcast_kernels_compile_for_sm90():
    # the interpreter does not run Triton's code generator: compile ahead of time for an H100/
    # H200 (sm_90) with the bundled ptxas; the delayed kernels' amax is one integer atomic
    # (relaxed: no fence) per program
    import os

    triton = pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("the kernels are interpreted functions under TRITON_INTERPRET=1")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from fp8_scaling import _fastcast as fc

    def compile_(fn, types, consts, warps):
        names = fn.arg_names
        sig = {n: ("constexpr" if n in consts else types.get(n, "i32")) for n in names}
        src = ASTSource(
            fn=fn, signature=sig, constexprs={(names.index(k),): v for k, v in consts.items()}
        )
        try:
            target = GPUTarget("cuda", 90, 32)
            return triton.compile(src, target=target, options={"num_warps": warps})
        except (RuntimeError, FileNotFoundError) as e:  # no CUDA backend/ptxas here
            if "ptxas" in str(e) or "backend" in str(e).lower():
                pytest.skip(f"cannot compile for sm_90 here: {e}")
            raise

    ptr = dict.fromkeys(("amax_ptr", "scale_ptr", "inv_ptr", "amax_out_ptr", "out_ptr"), "*fp32")
    for fmt, e5 in (("*fp8e4nv", False), ("*fp8e5", True)):
        types = {"x_ptr": "*bf16", "q_ptr": fmt, "qt_ptr": fmt, **ptr}
        for tmode, stages, delayed, tile_max, fixup in (
            (0, 1, False, False, False), (1, 1, True, False, False), (2, 3, True, True, False),
            (0, 1, False, False, True),  # the check pass of the one-pass JIT cast
        ):  # fmt: skip
            consts = dict(
                FMAX=448.0, EF=135, MF=0x600000, MARGIN=0, DELAYED=delayed, WRITE_T=True,
                OUT_FP32=False, E5M2=e5, EVEN=False, REVERSE=not delayed, BM=64, BN=128,
                GROUP=8, TMODE=tmode, STAGES=stages, TILE_MAX=tile_max, FIXUP=fixup,
            )  # fmt: skip
            ptx = compile_(fc._cast2_kernel, types, consts, 4).asm["ptx"]
            # relaxed, result unused: a fire-and-forget reduction (red.global) or an atomic
            atoms = [ln for ln in ptx.splitlines() if "atom.global" in ln or "red.global" in ln]
            assert len(atoms) == int(delayed)
            assert all(".s32" in ln for ln in atoms)
    for stages in (1, 3):
        consts = {"BLOCK": 4096, "STAGES": stages}
        ptx = compile_(fc._amax2_kernel, {"x_ptr": "*bf16", **ptr}, consts, 8).asm["ptx"]
        assert "atom.global" in ptx or "red.global" in ptx
        assert "max.s32" in ptx
