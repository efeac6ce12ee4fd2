"""Every Triton kernel of sparq.kernels compiles for an H100/H200 (sm_90) without a GPU.

The CPU interpreter runs the kernels' Python but not Triton's code generator, which has its own
rules (e.g. names defined in both branches of a runtime ``if`` must keep one type). Compiling
ahead of time for ``cuda:90`` with the bundled ptxas catches those here, and the register report
guards against spills in the in-register selection kernels.
"""

from __future__ import annotations

import os

import pytest

triton = pytest.importorskip("triton")

pytestmark = [
    pytest.mark.slow,
    # the interpreter replaces the kernels by Python functions, which Triton cannot compile
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET") == "1", reason="compiles kernels: unset TRITON_INTERPRET"
    ),
    # newer Triton warns once that its FP-fusion default will change; irrelevant to compiling
    pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION:UserWarning"),
]


def _compile(fn, types, consts, num_warps=4):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = fn.arg_names
    # constexpr parameters left out take their defaults (else they would be typed as runtime i32)
    consts = {
        **{p.name: p.default for p in fn.params if p.is_constexpr and p.has_default},
        **consts,
    }
    sig = {n: ("constexpr" if n in consts else types.get(n, "i32")) for n in names}
    src = ASTSource(
        fn=fn, signature=sig, constexprs={(names.index(k),): v for k, v in consts.items()}
    )
    try:
        return triton.compile(
            src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps}
        )
    except (RuntimeError, FileNotFoundError) as e:  # no CUDA backend/ptxas in this install
        if "ptxas" in str(e) or "backend" in str(e).lower():
            pytest.skip(f"cannot compile for sm_90 here: {e}")
        raise


def _ptrs(t, *names):
    return dict.fromkeys(names, t)


def test_selection_and_fused_kernels_compile_for_sm90():
    from sparq.kernels import _fused_mha as fm
    from sparq.kernels import _select_sample as ss
    from sparq.kernels import _step1 as s1

    lens = {"lens_ptr": "*i64"}
    for G, GP in ((1, 2), (4, 4)):
        f32 = _ptrs("*fp32", "logit_ptr", "m_ptr", "l_ptr", "stat_ptr", "cp_ptr", "alpha_ptr")
        i32 = _ptrs("*i32", "thr_ptr", "cnt_ptr", "ckey_ptr", "cpos_ptr", "out_idx_ptr")
        types = {**f32, **i32, **lens}
        for r16 in (False, True):
            consts = dict(G=G, GP=GP, NTP=32, SAMP=2048, RUN=8, R16=r16)
            assert _compile(ss._threshold_kernel, types, consts)
        assert _compile(ss._candidate_kernel, types, dict(G=G, GP=GP, CH=1024, CAP=256))
        for slots, r16 in ((4096, False), (4096, True), (16384, False)):
            k = _compile(
                ss._final_kernel, types,
                dict(G=G, GP=GP, NCHP=slots // 256, CAP=256, SLOTS=slots, CHF=512, R16=r16,
                     LEAN=False, ALPHA=0, DENSE=0),
                ss._final_warps(slots),
            )  # fmt: skip
            assert k.asm["cubin"]
        kt = {"kt_ptr": "*bf16", "idx_ptr": "*i32", "qhat_ptr": "*fp32"}
        assert _compile(s1._approx_logits_fma_kernel, {**types, **kt},
                        dict(DH=128, R=16, RP=16, G=G, TILE=512))  # fmt: skip
        assert _compile(s1._approx_logits_kernel, {**types, **kt, "S": "i32", "NT": "i32"},
                        dict(DH=128, R=16, RP=16, G=G, GP=16, TILE=512, F32DOT=False,
                             ROW1=G == 1))  # fmt: skip
    from sparq.kernels import _prep

    prep_types = {"q_ptr": "*bf16", "i1_ptr": "*i32", "qhat_ptr": "*fp32", "scale": "fp32"}
    for G, dh in ((1, 128), (4, 128), (8, 256)):
        consts = dict(G=G, GP=max(2, G), DH=dh, DHP=dh, JB=32)
        assert _compile(_prep._prep_kernel, prep_types, consts)
    kt = {"kt_ptr": "*bf16", "idx_ptr": "*i32", "qhat_ptr": "*fp32"}
    i32 = _ptrs("*i32", "thr_ptr", "cnt_ptr", "ckey_ptr", "cpos_ptr", "out_idx_ptr")
    types = {**_ptrs("*fp32", "m_ptr", "l_ptr", "cp_ptr", "alpha_ptr"), **kt, **lens, **i32}
    assert _compile(fm._fused_sample_kernel, types, dict(DH=128, R=16, RP=16, SAMP=512, RUN=16))
    assert _compile(fm._fused_step1_kernel, types, dict(DH=128, R=16, RP=16, TILE=512, CAP=128))
    assert _compile(
        fm._fused_final_kernel, types,
        dict(DH=128, R=16, RP=16, NTP=32, CAP=128, SLOTS=4096, CHF=256), 8,
    )  # fmt: skip
