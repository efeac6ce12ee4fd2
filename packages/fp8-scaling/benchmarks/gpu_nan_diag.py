"""Where does the first non-finite value of FP8 GPT training appear on the GPU?

``python packages/fp8-scaling/benchmarks/gpu_nan_diag.py OUT_DIR [DEVICE]`` (from the repository
root). Stages, cheapest first, each guarded by the wall budget ``FP8_DIAG_BUDGET`` (seconds):

1. ``torch._scaled_mm`` against its exact emulation for the three GEMM layouts of the linear
   (forward e4m3 x e4m3 -> bf16, grad-input e5m2 x e4m3 -> bf16, grad-weight e5m2 x e4m3 ->
   float32), with tiny (2**-31) and ordinary scales.
2. The cast kernels on float32 weights and on tiny bf16 gradients against the reference casts.
3. One ``Float8Linear`` (768 -> 3072, float32 weight, bf16 autocast input) per recipe and cast
   backend: SQNR of y / dx / dw against the emulation (``fast=False``) on the same device.
4. One training step of the 12-layer d=768 GPT (as ``train_demo``: autocast bf16, clip, fused
   AdamW) per recipe x cast backend (+ emulation, + no recorder, + unfused AdamW), eager; then
   a compiled 2-layer GPT. For each it prints the first non-finite forward output / grad of a
   layer's output (the GEMM input gradient) / grad of a layer's input / parameter gradient /
   parameter after the optimizer step, and the loss of the next forward.

Writes ``OUT_DIR/diag.json`` (every finding); the caller tees the printed lines into a log.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import traceback

import torch
import torch.nn.functional as F

import fp8_scaling as fs
from fp8_scaling import _linear_fn as lf
from fp8_scaling._cast_ops import (
    cast_transpose_impl,
    cast_transpose_ref,
    delayed_cast_impl,
    delayed_cast_ref,
)
from fp8_scaling._gpt import GPT, GPTConfig, _batch, stdlib_corpus

T0 = time.monotonic()
BUDGET = float(os.environ.get("FP8_DIAG_BUDGET", "105"))
OUT = sys.argv[1] if len(sys.argv) > 1 else "."
DEV = torch.device(sys.argv[2] if len(sys.argv) > 2 else "cuda")
SMOKE = DEV.type == "cpu"
REPORT: dict = {"device": str(DEV), "torch": torch.__version__, "stages": {}}


def left() -> float:
    return BUDGET - (time.monotonic() - T0)


def save() -> None:
    with open(os.path.join(OUT, "diag.json"), "w") as f:
        json.dump(REPORT, f, indent=1, default=str)


def say(*a) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s]", *a, flush=True)


def fin(t) -> bool:
    return t is None or bool(torch.isfinite(t.float()).all())


def sqnr(a: torch.Tensor, ref: torch.Tensor) -> float:
    a, ref = a.double(), ref.double()
    if not (torch.isfinite(a).all() and torch.isfinite(ref).all()):
        return float("nan")
    err = (a - ref).norm()
    return float("inf") if err == 0 else float(20 * torch.log10(ref.norm() / err))


def emu_mm(a8, b8, sa, sb, out_dtype):
    return (a8.float() @ b8.float() * (sa * sb)).to(out_dtype)


def stage_scaled_mm() -> None:
    res = {}
    hw = lf.hardware_fp8_supported(DEV)
    m, k, n = (64, 48, 32) if SMOKE else (4096, 768, 3072)
    g = torch.Generator(device=DEV).manual_seed(0)
    for name, fa, fb, od in (
        ("fwd e4m3 x e4m3 -> bf16", torch.float8_e4m3fn, torch.float8_e4m3fn, torch.bfloat16),
        ("dgrad e5m2 x e4m3 -> bf16", torch.float8_e5m2, torch.float8_e4m3fn, torch.bfloat16),
        ("wgrad e5m2 x e4m3 -> fp32", torch.float8_e5m2, torch.float8_e4m3fn, torch.float32),
        ("wgrad e5m2 x e4m3 -> bf16", torch.float8_e5m2, torch.float8_e4m3fn, torch.bfloat16),
    ):
        a = (torch.randn(m, k, device=DEV, generator=g) * 50).to(fa)
        b = (torch.randn(n, k, device=DEV, generator=g) * 50).to(fb).t()  # column-major (K, N)
        for sa_v, sb_v in ((1.0, 1.0), (2.0**-31, 2.0**-12), (2.0**-20, 2.0**-20)):
            sa = torch.tensor(sa_v, device=DEV)
            sb = torch.tensor(sb_v, device=DEV)
            ref = emu_mm(a, b, sa, sb, od)
            for fast, prefill in ((False, False), (True, False), (False, True)):
                key = f"{name} sa={sa_v:.3g} sb={sb_v:.3g} fast_accum={fast}"
                key += " nan-prefilled-memory" if prefill else ""
                if prefill:  # the freed block is handed to the output: is it read?
                    junk = torch.full((m, n), float("nan"), device=DEV, dtype=od)
                    del junk
                try:
                    if hw:
                        y = torch._scaled_mm(
                            a, b, scale_a=sa, scale_b=sb, out_dtype=od, use_fast_accum=fast
                        )
                    else:
                        y = emu_mm(a, b, sa, sb, od)
                    r = {"finite": fin(y), "sqnr_db": sqnr(y.float(), ref.float())}
                except Exception as e:
                    r = {"error": repr(e)[:300]}
                res[key] = r
                if not r.get("finite", False) or r.get("sqnr_db", 99) < 30:
                    say("  SCALED_MM BAD", key, r)
    say(f"stage 1 _scaled_mm: {sum(1 for v in res.values() if v.get('finite'))}/{len(res)} finite")
    REPORT["stages"]["scaled_mm"] = res


def _bits_equal(u: torch.Tensor, v: torch.Tensor) -> bool:
    if u.shape != v.shape or u.dtype != v.dtype:
        return False
    it = torch.uint8 if u.element_size() == 1 else torch.int32
    return torch.equal(u.reshape(-1).view(it), v.reshape(-1).view(it))


def stage_casts() -> None:
    res = {}
    cases = {
        "fp32 weight e4m3": (torch.randn(3072, 768, device=DEV) * 0.02, "e4m3"),
        "bf16 act e4m3": (torch.randn(4096, 768, device=DEV).to(torch.bfloat16), "e4m3"),
        "bf16 tiny grad e5m2": ((torch.randn(4096, 768, device=DEV) * 1e-9).bfloat16(), "e5m2"),
        "bf16 grad e5m2": ((torch.randn(4096, 768, device=DEV) * 1e-5).bfloat16(), "e5m2"),
        "bf16 zero grad e5m2": (torch.zeros(4096, 768, device=DEV, dtype=torch.bfloat16), "e5m2"),
    }
    for name, (x, fmt) in cases.items():
        if SMOKE:
            x = x[:40, :24].contiguous()
        a = x.float().abs().amax()
        got = cast_transpose_impl(x, a, fmt, 0, True)
        want = cast_transpose_ref(x, a, fmt, 0, True)
        same = [_bits_equal(u, v) for u, v in zip(got, want)]
        s = torch.tensor(2.0**14, device=DEV)
        gd = delayed_cast_impl(x, s, fmt, True)
        wd = delayed_cast_ref(x, s, fmt, True)
        same_d = [_bits_equal(u, v) for u, v in zip(gd, wd)]
        r = {"jit_equal(q,qt,inv)": same, "inv": float(got[2]), "delayed_equal(q,qt,amax)": same_d}
        r["finite"] = all(fin(t.float()) for t in (*got, *gd))
        res[name] = r
        if not all(same) or not all(same_d) or not r["finite"]:
            say("  CAST MISMATCH", name, r)
    n_eq = sum(all(v["jit_equal(q,qt,inv)"]) for v in res.values())
    say(f"stage 2 casts: {n_eq}/{len(res)} equal")
    REPORT["stages"]["casts"] = res


RECIPES = {
    "jit": fs.JustInTimeScaling(),
    "delayed": fs.DelayedScaling(history_len=16),
    "constant": fs.ConstantScaling(bias=4, grad_bias=14),
}


def stage_linear() -> None:
    res = {}
    m, k, n = (32, 48, 64) if SMOKE else (4096, 768, 3072)
    torch.manual_seed(0)
    base = torch.nn.Linear(k, n, device=DEV)
    torch.nn.init.normal_(base.weight, std=0.02)
    x0 = torch.randn(m, k, device=DEV)
    dy = torch.randn(m, n, device=DEV).bfloat16() * 1e-5
    for rname, recipe in RECIPES.items():
        for backend in ("auto", "inductor", "triton", "emulation"):
            outs = []
            for fast in (backend, False):
                if fast == "emulation":
                    fast = False
                lin = fs.Float8Linear.from_linear(copy.deepcopy(base), recipe)
                lin.cast_backend = fast if fast else "auto"
                x = x0.clone().requires_grad_(True)
                with torch.autocast(DEV.type, dtype=torch.bfloat16):
                    if fast is False:
                        y = fs.float8_linear(
                            x.bfloat16(), lin.weight, lin.bias, recipe, lin.fp8_amax_history, False
                        )
                    else:
                        y = lin(x)
                y.backward(dy.to(y.dtype))
                outs.append((y, x.grad, lin.weight.grad, lin.bias.grad))
            key = f"{rname}/{backend}"
            r = {
                "finite": [fin(t) for t in outs[0]],
                "sqnr_db_vs_emulation": [sqnr(a.float(), b.float()) for a, b in zip(*outs)],
                "dtypes": [str(t.dtype) for t in outs[0]],
            }
            res[key] = r
            db = [round(v, 1) for v in r["sqnr_db_vs_emulation"]]
            say(f"  linear {key}: finite(y,dx,dw,db)={r['finite']} sqnr={db}")
    REPORT["stages"]["linear"] = res


def _first_bad(model, x, y, opt_fn, steps_after: int = 1, hooks: bool = True) -> dict:
    """One training step with hooks; returns the first non-finite place of each kind."""
    found: dict = {
        "forward_output": None,
        "grad_of_layer_output": None,
        "grad_of_layer_input": None,
        "param_grad": None,
        "param_after_step": None,
    }
    order: list[str] = []
    handles = []

    def fwd_hook(name):
        def hook(mod, args, out):
            if not torch.is_tensor(out):
                return
            if found["forward_output"] is None and not fin(out):
                found["forward_output"] = name
            if out.requires_grad:
                out.register_hook(lambda g, name=name: _g(name, g, "grad_of_layer_output"))
            a = args[0] if args and torch.is_tensor(args[0]) else None
            if a is not None and a.requires_grad and a.is_floating_point():
                a.register_hook(lambda g, name=name: _g(name, g, "grad_of_layer_input"))

        return hook

    def _g(name, g, kind):
        order.append(f"{kind}:{name}")
        if found[kind] is None and not fin(g):
            found[kind] = f"{name} (amax {float(g.float().abs().nan_to_num(0, 0, 0).max()):.3g})"

    for name, mod in model.named_modules() if hooks else ():
        if name and not list(mod.children()):
            handles.append(mod.register_forward_hook(fwd_hook(name)))
    opt, amp = opt_fn(model), torch.bfloat16
    with torch.autocast(DEV.type, dtype=amp):
        logits = model(x)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    for h in handles:
        h.remove()
    for n, p in model.named_parameters():
        if p.grad is not None and not fin(p.grad):
            found["param_grad"] = found["param_grad"] or n
    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    for n, p in model.named_parameters():
        if not fin(p):
            found["param_after_step"] = found["param_after_step"] or n
    found["loss0"] = float(loss.detach())
    found["grad_norm"] = float(gn)
    with torch.no_grad(), torch.autocast(DEV.type, dtype=amp):
        for _ in range(steps_after):
            lg = model(x)
    found["loss_after_step"] = float(F.cross_entropy(lg.float().reshape(-1, 256), y.reshape(-1)))
    return found


def _fused(model):
    return torch.optim.AdamW(
        model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.0,
        fused=DEV.type == "cuda" or None,
    )  # fmt: skip


def _unfused(model):
    return torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.0)


def stage_gpt() -> None:
    res = REPORT["stages"].setdefault("gpt", {})
    cfg = (
        GPTConfig(n_layer=1, d_model=32, n_head=2, seq_len=16)
        if SMOKE
        else GPTConfig(n_layer=12, d_model=768, n_head=12, seq_len=256)
    )
    bs = 2 if SMOKE else 16
    data = stdlib_corpus(200_000)
    torch.manual_seed(0)
    base = GPT(cfg).to(DEV)
    x, y = _batch(data, bs, cfg.seq_len, torch.Generator().manual_seed(0), DEV)
    variants = [
        ("jit", "auto", True, _fused),
        ("delayed", "auto", True, _fused),
        ("constant", "auto", True, _fused),
        ("jit", "emulation", True, _fused),
        ("jit", "inductor", True, _fused),
        ("jit", "auto", False, _fused),
        ("jit", "auto", True, _unfused),
        ("delayed", "inductor", True, _fused),
        ("constant", "inductor", True, _fused),
        ("jit", "triton", True, _fused),
    ]
    for rname, backend, with_rec, opt_fn in variants:
        if left() < 25:
            say("  (budget) skipping the remaining eager GPT variants")
            break
        key = f"eager {rname}/{backend}{'' if with_rec else ' no-recorder'}"
        key += " unfused-adamw" if opt_fn is _unfused else ""
        m = copy.deepcopy(base)
        fs.convert_to_float8(m, RECIPES[rname], auto_filter=False)
        if backend == "emulation":
            lf_hw = lf.hardware_fp8_supported
            lf.hardware_fp8_supported = lambda d: False
        else:
            for mod in m.modules():
                if isinstance(mod, fs.Float8Linear):
                    mod.cast_backend = backend
        rec = fs.ScaleRecorder(m, every=1) if with_rec else None
        try:
            r = _first_bad(m, x, y, opt_fn)
        except Exception:
            r = {"error": traceback.format_exc()[-600:]}
        finally:
            if backend == "emulation":
                lf.hardware_fp8_supported = lf_hw
        if rec is not None:
            rec.remove()
        res[key] = r
        say(f"  GPT {key}: {r}")
        save()
    if left() > 40:
        c2 = GPTConfig(n_layer=2, d_model=cfg.d_model, n_head=cfg.n_head, seq_len=cfg.seq_len)
        torch.manual_seed(0)
        b2 = GPT(c2).to(DEV)
        for backend in ("auto", "triton"):
            if left() < 20:
                break
            key = f"compiled 2-layer jit/{backend}"
            m = copy.deepcopy(b2)
            fs.convert_to_float8(m, RECIPES["jit"], auto_filter=False)
            for mod in m.modules():
                if isinstance(mod, fs.Float8Linear):
                    mod.cast_backend = backend
            mc = torch.compile(m)
            try:
                r = _first_bad(mc, x, y, _fused, hooks=False)
            except Exception:
                r = {"error": traceback.format_exc()[-600:]}
            res[key] = r
            say(f"  GPT {key}: {r}")
            save()


def main() -> None:
    torch.set_num_threads(min(4, torch.get_num_threads()))
    say("torch", torch.__version__, "device", DEV, "fp8 hw", lf.hardware_fp8_supported(DEV))
    for stage in (stage_scaled_mm, stage_casts, stage_linear, stage_gpt):
        if left() < 10:
            say(f"(budget) skipping {stage.__name__}")
            continue
        try:
            stage()
        except Exception:
            REPORT["stages"][stage.__name__ + "_error"] = traceback.format_exc()[-1500:]
            say(f"{stage.__name__} FAILED:\n{traceback.format_exc()[-1500:]}")
        save()
    say("done")


if __name__ == "__main__":
    main()
