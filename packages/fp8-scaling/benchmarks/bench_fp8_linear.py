"""Float8Linear forward+backward vs bf16 nn.Linear and torchao (all compiled), plus auto_filter.

Shapes are (M tokens, K in_features, N out_features); bf16 inputs and outputs; our recipe is the
JIT power-of-two per-tensor recipe (Perez et al. 2023, FP8-AMAX). torchao is optional: its cases
fail with an ImportError row when it is not installed.
"""

from __future__ import annotations

import os
import sys
import types

import torch
from monobench import Measure, case
from torch import nn

from fp8_scaling import Float8Linear, JustInTimeScaling, _linear_fn, _speccast, convert_to_float8
from fp8_scaling._fastcast import CastConfig
from fp8_scaling._spec_first import SpecConfig

# every compiled model is a new guard set for the same wrapper code: allow them all, so no
# variant silently falls back to eager after dynamo's default limit of 8 recompiles
torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
if hasattr(torch._dynamo.config, "recompile_limit"):
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
_SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (16384, 8192, 8192), (16384, 8192, 28672)]
if os.environ.get("FP8_BENCH_SHAPES"):  # e.g. "4096x4096x4096,8192x8192x8192"
    _SHAPES = [
        tuple(int(v) for v in s.split("x")) for s in os.environ["FP8_BENCH_SHAPES"].split(",")
    ]
_PARAMS = [{"m": m, "k": k, "n": n} for m, k, n in _SHAPES]
_QUICK = [{"m": 64, "k": 64, "n": 128}]
# survives the harness re-importing this file for each case (compiled models are reused)
_CACHE: dict = sys.modules.setdefault(
    "_fp8_bench_cache", types.ModuleType("_fp8_bench_cache")
).__dict__.setdefault("cache", {})
PEAK_BF16 = 9.9e14
amax_default = _linear_fn.TRITON_OP_AMAX
pair_default = _linear_fn.AUTO_PAIR
spec_default = _linear_fn.AUTO_SPEC
lean_default = _speccast.LEAN_FIRST


def _sqnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float(20 * torch.log10(b.norm() / (a - b).norm().clamp_min(1e-30)))


def _inputs(m, k, n, device):
    key = ("inputs", m, k, n, device)
    if key not in _CACHE:
        g = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randn(m, k, generator=g).to(device, torch.bfloat16)
        w = (torch.randn(n, k, generator=g) / k**0.5).to(device, torch.bfloat16)
        dy = torch.randn(m, n, generator=g).to(device, torch.bfloat16)
        _CACHE[key] = (x, w, dy)
    return _CACHE[key]


# kinds "ours_fa_<key>": the default layer with the recipe's fast_accum set to the value
FA_KINDS = {"none": "none", "all": "all", "fwd": "forward", "gi": "output+grad_input",
            "gw": "output+grad_weight", "grads": "grad_input+grad_weight"}  # fmt: skip


def _layer(kind: str, m: int, k: int, n: int, device: str):
    """A compiled one-layer model of the given kind and a step() doing forward + backward."""
    key = (kind, m, k, n, device)
    if key in _CACHE:
        return _CACHE[key]
    x0, w0, dy = _inputs(m, k, n, device)
    lin = nn.Linear(k, n, bias=False, device=device, dtype=torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(w0)
    model: nn.Module = nn.Sequential(lin)
    use_compile = device == "cuda" and not kind.endswith("_eager")
    reduce_overhead = kind.endswith("_ro")  # torch.compile(mode="reduce-overhead"): CUDA graphs
    base_kind = kind.removesuffix("_eager").removesuffix("_ro")
    ours = ("ours", "ours_triton", "ours_inductor", "ours_fastacc", "ours_indamax", "ours_pair",
            "ours_perop", "ours_spec", "ours_spec_fastacc", "ours_twopass",
            "ours_v2first", "ours_tk", "ours_lean")  # fmt: skip
    fa_spec = None
    shipped_first = base_kind == "ours_shipfirst"  # "auto", first pass fixed (see step())
    if shipped_first:
        base_kind = "ours"
    if base_kind.startswith("ours_fa_"):  # "auto" casts, fast accumulation per FA_KINDS
        fa_spec, base_kind = FA_KINDS[base_kind.removeprefix("ours_fa_")], "ours"
    if base_kind in ours:
        backend = {"ours_triton": "triton", "ours_inductor": "inductor", "ours_pair": "pair",
                   "ours_spec": "spec", "ours_spec_fastacc": "spec"}  # fmt: skip
        backend = backend.get(base_kind, "auto")
        fast_all = base_kind in ("ours_fastacc", "ours_spec_fastacc")
        fa = fa_spec or ("all" if fast_all else None)  # None: the recipe's default
        recipe = JustInTimeScaling(fast_accum=fa) if fa else JustInTimeScaling()
        model = nn.Sequential(Float8Linear.from_linear(lin, recipe, cast_backend=backend))
    elif base_kind == "ours_auto":
        model = convert_to_float8(model, JustInTimeScaling(), auto_filter=True)
    elif base_kind == "ours_auto_tokens":  # decided once at conversion for M = m rows
        model = convert_to_float8(model, JustInTimeScaling(), auto_filter=True, tokens=m)
    elif base_kind.startswith("torchao"):
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training

        cfg = Float8LinearConfig.from_recipe_name(base_kind.split("_", 1)[1])
        model = convert_to_float8_training(model, config=cfg)
    elif base_kind != "bf16":
        raise ValueError(kind)
    mode = "reduce-overhead" if reduce_overhead else None
    cm = torch.compile(model, mode=mode) if use_compile else model
    x = x0.clone().requires_grad_(True)

    def step():
        x.grad = None
        model[0].weight.grad = None
        if reduce_overhead:  # a new training iteration for the CUDA-graph trees
            torch.compiler.cudagraph_mark_step_begin()
        if base_kind == "ours_indamax":  # traced with inductor's amax (set at every call:
            _linear_fn.TRITON_OP_AMAX = False  # dynamo guards on the value it read)
        if base_kind == "ours_perop":  # "auto" without the pair kernels (one tensor at a time)
            _linear_fn.AUTO_PAIR = False
        if base_kind == "ours_twopass":  # "auto" without the one-pass JIT casts
            _linear_fn.AUTO_SPEC = False
        if base_kind == "ours_v2first":  # one-pass casts with the former first-pass kernel
            _speccast.SPEC_FIRST = CastConfig(64, 128, 4)
        if shipped_first:  # the first pass that the packaged table names for 8192^2 (run 21)
            _speccast.SPEC_FIRST = SpecConfig(32, 128, 4, 16, 1, 0, 0, 8, 3)
        if base_kind == "ours_tk":  # one-pass casts as triton_op (launched by inductor's code)
            _linear_fn.SPEC_TRITON_OP = True
        if base_kind == "ours_lean":  # "auto" with lean first passes (fp8_scaling._spec_first)
            _speccast.LEAN_FIRST = True
        try:
            y = cm(x)
            y.backward(dy)
        finally:
            _linear_fn.TRITON_OP_AMAX = amax_default
            _linear_fn.AUTO_PAIR = pair_default
            _linear_fn.AUTO_SPEC = spec_default
            _speccast.SPEC_FIRST = None
            _linear_fn.SPEC_TRITON_OP = False
            _speccast.LEAN_FIRST = lean_default
        return y

    step.cm, step.dy = cm, dy  # for benchmarks/profile_host.py (forward/backward host split)
    step.plain = not reduce_overhead and base_kind not in ("ours_indamax", "ours_perop",
                                                           "ours_twopass", "ours_v2first",
                                                           "ours_tk", "ours_lean")  # fmt: skip
    step.plain = step.plain and not shipped_first
    _CACHE[key] = (step, x, model)
    return _CACHE[key]


def _reference(m, k, n, device):
    key = ("ref", m, k, n, device)
    if key not in _CACHE:
        for k_ in [k_ for k_ in _CACHE if k_[0] == "ref"]:
            del _CACHE[k_]  # keep one fp32 reference at a time
        x_ref, w_ref, dy = _inputs(m, k, n, device)
        xr = x_ref.float().requires_grad_(True)
        wr = w_ref.float().requires_grad_(True)
        yr = xr @ wr.t()
        yr.backward(dy.float())
        _CACHE[key] = (yr.detach(), xr.grad, wr.grad)
    return _CACHE[key]


def _poison(device: str) -> None:
    """NaN bytes in the caching allocator's free blocks: an output buffer that a kernel should
    have written but did not then holds garbage, not a stale correct copy of an earlier step."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        del_me = torch.full((256 << 20,), float("nan"), device=device)  # 1 GiB
        del del_me


def _check(kind: str, m, k, n, device):
    def run():
        step, x, model = _layer(kind, m, k, n, device)
        _poison(device)
        y = step()
        yr, dxr, dwr = _reference(m, k, n, device)
        s = [_sqnr(y, yr), _sqnr(x.grad, dxr), _sqnr(model[0].weight.grad, dwr)]
        # FP8 E4M3/E5M2 GEMMs: ~28 dB (output) and ~24 dB (grads) on random normal data; 20 dB
        # leaves margin for data variation while still catching a wrong scale (which gives < 0 dB).
        if kind != "bf16" and min(s) < 20:
            raise AssertionError(f"{kind} at {(m, k, n)}: SQNR {s} dB below 20 dB")
        return s

    return run


def _measure(cand: str, base: str, m, k, n, device, timing: str = "pipelined") -> Measure:
    """Both sides timed the same way: ``timing="pipelined"`` (default: steps issued back to
    back, one CUDA event per step boundary, as in a training loop) or ``"latency"`` (a device
    sync after every step, so each step's host launch time is exposed)."""
    c_step, _, c_model = _layer(cand, m, k, n, device)
    b_step = _layer(base, m, k, n, device)[0]
    sq: dict = {"timing": timing}  # check() adds the SQNRs (the harness reads extra after it)
    if isinstance(c_model[0], Float8Linear):  # which path auto_filter takes at this shape
        sq["candidate_uses_fp8"] = bool(c_model[0].use_fp8_for(_inputs(m, k, n, device)[0]))
    elif type(c_model[0]) is nn.Linear:  # left unconverted (auto_filter with tokens=)
        sq["candidate_uses_fp8"] = False

    def check():
        sq["candidate_sqnr_db"] = _check(cand, m, k, n, device)()
        sq["baseline_sqnr_db"] = _check(base, m, k, n, device)()

    return Measure(
        candidate=c_step,
        baseline=b_step,
        candidate_label=cand,
        baseline_label=base,
        flops=3 * 2.0 * m * k * n,
        peak_flops=2 * PEAK_BF16,
        check=check,
        extra=sq,
        timing=timing,
    )


@case("linear_fp8_vs_bf16", params=_PARAMS, quick_params=_QUICK)
def bench_vs_bf16(m: int, k: int, n: int, device: str) -> Measure:
    """Float8Linear (JIT pow2) fwd+bwd vs bf16 nn.Linear, both compiled."""
    return _measure("ours", "bf16", m, k, n, device)


@case("linear_fp8_vs_bf16_latency", params=_PARAMS, quick_params=_QUICK)
def bench_vs_bf16_latency(m: int, k: int, n: int, device: str) -> Measure:
    """As linear_fp8_vs_bf16, timed with a device sync after every step (latency view)."""
    return _measure("ours", "bf16", m, k, n, device, timing="latency")


@case(
    "linear_fp8_vs_torchao_tensorwise_latency", params=_PARAMS, quick_params=_QUICK,
    devices=("cuda",),
)  # fmt: skip
def bench_vs_tao_tw_latency(m: int, k: int, n: int, device: str) -> Measure:
    """As linear_fp8_vs_torchao_tensorwise, timed with a device sync after every step."""
    return _measure("ours", "torchao_tensorwise", m, k, n, device, timing="latency")


@case("linear_fp8_vs_torchao_tensorwise", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_vs_tao_tw(m: int, k: int, n: int, device: str) -> Measure:
    """Float8Linear vs torchao convert_to_float8_training (tensorwise), both compiled."""
    return _measure("ours", "torchao_tensorwise", m, k, n, device)


@case("linear_fp8_vs_torchao_rowwise", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_vs_tao_rw(m: int, k: int, n: int, device: str) -> Measure:
    """Float8Linear vs torchao convert_to_float8_training (rowwise), both compiled."""
    return _measure("ours", "torchao_rowwise", m, k, n, device)


@case("torchao_tensorwise_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_tao_vs_bf16(m: int, k: int, n: int, device: str) -> Measure:
    """Reference point: torchao tensorwise vs bf16 in the same run."""
    return _measure("torchao_tensorwise", "bf16", m, k, n, device)


@case("auto_filter_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_auto(m: int, k: int, n: int, device: str) -> Measure:
    """convert_to_float8(auto_filter=True) vs bf16: must never be > 2 % slower."""
    return _measure("ours_auto", "bf16", m, k, n, device)


@case("auto_filter_tokens_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_auto_tokens(m: int, k: int, n: int, device: str) -> Measure:
    """convert_to_float8(auto_filter=True, tokens=m) vs bf16: layers predicted slower stay the
    plain nn.Linear objects (decided at conversion, not per call)."""
    return _measure("ours_auto_tokens", "bf16", m, k, n, device)


@case("linear_fp8_triton_ops_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_triton_ops(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: our Triton cast kernels inside the compiled graph (launched by inductor)."""
    return _measure("ours_triton", "bf16", m, k, n, device)


@case("linear_fp8_pair_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_pair(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: the forward's input and weight cast by the pair kernels (one amax launch and one
    cast launch for both; ``cast_backend="pair"``), compiled, vs bf16."""
    return _measure("ours_pair", "bf16", m, k, n, device)


@case(
    "linear_fp8_pair_vs_torchao_tensorwise", params=_PARAMS, quick_params=_QUICK,
    devices=("cuda",),
)  # fmt: skip
def bench_pair_vs_tao(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: ``cast_backend="pair"`` vs torchao tensorwise, both compiled."""
    return _measure("ours_pair", "torchao_tensorwise", m, k, n, device)


@case("linear_fp8_perop_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_perop(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: the former "auto" (one amax and one cast per tensor, no pair kernels), compiled,
    vs bf16 (``_linear_fn.AUTO_PAIR = False``)."""
    return _measure("ours_perop", "bf16", m, k, n, device)


@case(
    "linear_fp8_perop_vs_torchao_tensorwise", params=_PARAMS, quick_params=_QUICK,
    devices=("cuda",),
)  # fmt: skip
def bench_perop_vs_tao(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: the former "auto" vs torchao tensorwise, both compiled."""
    return _measure("ours_perop", "torchao_tensorwise", m, k, n, device)


@case("linear_fp8_inductor_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_inductor(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: casts traced as torch ops and generated by inductor (the former default)."""
    return _measure("ours_inductor", "bf16", m, k, n, device)


@case("linear_fp8_inductor_amax_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_inductor_amax(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: compiled, amax from inductor's reduction, cast from our kernel (one user-kernel
    launch per tensor; ``_linear_fn.TRITON_OP_AMAX = False``)."""
    return _measure("ours_indamax", "bf16", m, k, n, device)


@case("linear_fp8_eager_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_eager(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: Float8Linear in eager mode (direct Triton launches) vs compiled bf16."""
    return _measure("ours_eager", "bf16", m, k, n, device)


@case("linear_fp8_fast_accum_all_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_fastacc(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: Hopper fast accumulation in the two gradient GEMMs too (fast_accum="all")."""
    return _measure("ours_fastacc", "bf16", m, k, n, device)


@case("linear_fp8_twopass_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cpu", "cuda"))
def bench_twopass(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: "auto" with the two-pass JIT casts (amax pass, then cast pass) everywhere, i.e.
    the default before the one-pass casts (``_linear_fn.AUTO_SPEC = False``), vs bf16."""
    return _measure("ours_twopass", "bf16", m, k, n, device)


@case(
    "linear_fp8_twopass_vs_torchao_tensorwise", params=_PARAMS, quick_params=_QUICK,
    devices=("cuda",),
)  # fmt: skip
def bench_twopass_vs_tao(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: the two-pass JIT casts vs torchao tensorwise, both compiled."""
    return _measure("ours_twopass", "torchao_tensorwise", m, k, n, device)


@case("linear_fp8_spec_vs_bf16", params=_PARAMS, quick_params=_QUICK, devices=("cpu", "cuda"))
def bench_spec(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: one-pass JIT casts (``cast_backend="spec"``: the previous scale is reused when
    the amax measured in the same pass confirms it, else the tensor is recast), vs bf16."""
    return _measure("ours_spec", "bf16", m, k, n, device)


@case(
    "linear_fp8_spec_vs_torchao_tensorwise", params=_PARAMS, quick_params=_QUICK,
    devices=("cuda",),
)  # fmt: skip
def bench_spec_vs_tao(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: ``cast_backend="spec"`` vs torchao tensorwise, both compiled."""
    return _measure("ours_spec", "torchao_tensorwise", m, k, n, device)


@case("linear_fp8_spec_fast_accum_all_vs_bf16", params=_PARAMS, quick_params=_QUICK,
      devices=("cuda",))  # fmt: skip
def bench_spec_fastacc(m: int, k: int, n: int, device: str) -> Measure:
    """Variant: one-pass JIT casts and fast accumulation in all three GEMMs, vs bf16."""
    return _measure("ours_spec_fastacc", "bf16", m, k, n, device)


_SMALL = [{"m": 256, "k": 256, "n": 256}]


@case("host_overhead_eager", params=_SMALL, quick_params=_SMALL, devices=("cuda",))
def bench_host_eager(m: int, k: int, n: int, device: str) -> Measure:
    """Per-call host time: at 256^3 the GPU work is a few µs, so the time is the host's."""
    return _measure("ours_eager", "bf16_eager", m, k, n, device)


@case("host_overhead_compiled", params=_SMALL, quick_params=_SMALL, devices=("cuda",))
def bench_host_compiled(m: int, k: int, n: int, device: str) -> Measure:
    """Per-call host time of the compiled layers (inductor-fused casts vs bf16)."""
    return _measure("ours", "bf16", m, k, n, device)


@case("linear_fp8_ro_vs_bf16_ro", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_ro_vs_bf16(m: int, k: int, n: int, device: str) -> Measure:
    """Both compiled with mode="reduce-overhead" (CUDA graphs): no host overhead on either side."""
    return _measure("ours_ro", "bf16_ro", m, k, n, device)


@case("linear_fp8_ro_vs_torchao_ro", params=_PARAMS, quick_params=_QUICK, devices=("cuda",))
def bench_ro_vs_tao(m: int, k: int, n: int, device: str) -> Measure:
    """Ours vs torchao tensorwise, both compiled with mode="reduce-overhead"."""
    return _measure("ours_ro", "torchao_tensorwise_ro", m, k, n, device)
