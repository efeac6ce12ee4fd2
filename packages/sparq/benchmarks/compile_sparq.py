"""Compile every SparQ Triton kernel variant for sm_90 without a GPU (compile errors only).

Usage: ``python compile_sparq.py [--attend-only]`` (without ``TRITON_INTERPRET``;
``--attend-only``: only the fused selection + attention path, ``hist_attention``). Triton's
CUDA driver is replaced by a stand-in that reports an sm_90 target, and every launch becomes a
compile-only warm-up on CPU tensors, so the code paths of the dispatch (query preparation,
step 1, the histogram and sampled selections with their options, the fused MHA selection,
step 2, the fused selection + attention) are compiled with the real compile-time constants of
a few shapes (including a single-chunk row, where Triton turns an integer argument equal to 1
into a constant), in every launch mode.
Under the interpreter such errors stay hidden (it runs only the branches taken). Prints one
line per variant and exits with status 1 if any failed. Takes about ten minutes on one core.
"""

from __future__ import annotations

import os
import sys


def _fake_driver():
    import torch
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.driver import CudaDriver
    from triton.runtime import driver, jit

    class _SM90(CudaDriver):
        def __init__(self):  # no CUDA library needed
            pass

        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

        def get_current_device(self):
            return 0

        def get_current_stream(self, *args):
            return 0

        def set_current_device(self, *args):
            pass

        def get_active_torch_device(self):
            return torch.device("cpu")

        def get_device_interface(self):
            return torch.cuda

        @staticmethod
        def is_active():
            return True

    driver.set_active(_SM90())
    run = jit.JITFunction.run

    def compile_only(self, *args, grid, warmup, **kw):
        return run(self, *args, grid=grid, warmup=True, **kw)

    jit.JITFunction.run = compile_only


def main(argv: list[str]) -> int:
    only_attend = "--attend-only" in argv
    os.environ.pop("TRITON_INTERPRET", None)
    _fake_driver()
    import torch

    from sparq.kernels import approx_logits, select_topk_hist, select_topk_sampled, sparse_attention
    from sparq.kernels._common import pdl_launches
    from sparq.kernels._fused_mha import fused_mha_supported, select_fused_mha
    from sparq.kernels._hist_attend import hist_attention
    from sparq.kernels._prep import prepare_query_fused
    from sparq.kernels._select_sample import sampled_supported

    failed = []

    def attempt(name, fn, *args, **kw):
        try:
            fn(*args, **kw)
            print(f"ok    {name}", flush=True)
        except Exception as e:  # report and go on
            failed.append(name)
            print(f"FAIL  {name}: {repr(e)[-300:]}", flush=True)

    hist_kw = [
        {"lean": True},
        {"samples": 512, "thr_warps": 8, "lean": True, "fast_cand": True, "sort_search": True},
        {"lean": True, "fast_cand": True, "need_alpha": True},
        {"lean": True, "fast_cand": True, "sort_search": True, "no_lists": 1},
        {"lean": True, "fast_cand": True, "sort_search": True, "no_lists": 2},
        {"lean": True, "fast_cand": True, "cand_maxnreg": 64},
        {"lean": True, "chunk_major": True},
        {"lean": True, "merge_emit": True},
        {"lean": True, "hist_search": True},
        {},
    ]
    attend_kw = [
        {"lean": True},
        {"samples": 512, "thr_warps": 8, "lean": True, "num_warps": 8, "fused_resolve": True},
        {"samples": 512, "thr_warps": 8, "lean": True, "fast_cand": True, "sort_search": True,
         "fused_resolve": True, "block": 32},
        {"samples": 512, "thr_warps": 8, "lean": True, "fast_cand": True, "sort_search": True,
         "no_lists": 1},
        {"samples": 512, "thr_warps": 8, "lean": True, "num_warps": 8, "fused_resolve": True,
         "merge": True},
        {"samples": 512, "thr_warps": 8, "lean": True, "fast_cand": True, "sort_search": True,
         "fused_resolve": True, "merge": True, "block": 128, "attend_warps": 8},
        {"samples": 512, "thr_warps": 8, "lean": True, "num_warps": 8, "fused_resolve": True,
         "merge": True, "thr_in_cand": True, "sort_search": True},
        {"samples": 512, "thr_warps": 8, "lean": True, "num_warps": 8, "splits": 64},
        {"samples": 512, "thr_warps": 8, "lean": True, "fast_cand": True, "sort_search": True,
         "no_lists": True, "splits": 6, "block": 32},
    ]  # fmt: skip
    sampled_kw = [
        {"lean": True, "fallback_block": 128},
        {},
        {"lean": True, "fallback_block": 128, "samples": 1024, "num_warps": 8,
         "key_alpha": True, "dense_block": 2048},
    ]  # fmt: skip
    # (B, Hkv, G, S, k): K2-like, K3-like, MHA, one chunk per row, tiny
    shapes = [(2, 8, 4, 32768, 2048), (1, 8, 4, 131072, 8192), (2, 4, 1, 16384, 1024),
              (4, 2, 2, 1000, 100), (1, 1, 1, 64, 8)]  # fmt: skip
    dh, r = 128, 16
    for pdl, l2 in ((0, False), (2, True)):
        with pdl_launches(pdl, l2):
            for B, Hkv, G, S, k in shapes:
                shp = f"B={B} Hkv={Hkv} G={G} S={S} k={k} pdl={pdl} l2={l2}"
                q = torch.randn(B, Hkv * G, 1, dh).bfloat16()
                lens = torch.full((B,), S)
                K = torch.empty(B, Hkv, S, dh).bfloat16()
                lg, tm = torch.empty(B, Hkv, G, S), torch.empty(B, Hkv, G, -(-S // 1024))
                for kw in attend_kw:
                    attempt(f"attend {kw} {shp}", hist_attention, q, K, K, lg, tm, tm, lens, k,
                            16, 2, **kw)  # fmt: skip
                if only_attend:
                    K_t = torch.empty(B, Hkv, dh, S).bfloat16()
                    attempt(f"step1 prep {shp}", approx_logits, K_t, None, None, lens, rows=True,
                            prep_q=(q, r, 0.1))  # fmt: skip
                    continue
                attempt(f"prep {shp}", prepare_query_fused, q, Hkv, r, 0.1, sort=True)
                K_t = torch.empty(B, Hkv, dh, S).bfloat16()
                i1 = torch.zeros(B, Hkv, r, dtype=torch.int32)
                qh = torch.randn(B, Hkv, G, r)
                attempt(f"step1 {shp}", approx_logits, K_t, i1, qh, lens, rows=True)
                attempt(f"step1 prep {shp}", approx_logits, K_t, None, None, lens, rows=True,
                        prep_q=(q, r, 0.1))  # fmt: skip
                args = (lg, tm, tm, lens, k, 16, 2)
                for kw in hist_kw:
                    kw = {"need_alpha": False, **kw}
                    attempt(f"hist {kw} {shp}", select_topk_hist, *args, **kw)
                for kw in sampled_kw if sampled_supported(S, k) else ():
                    attempt(f"sampled {kw} {shp}", select_topk_sampled, *args, **kw)
                if G == 1 and fused_mha_supported(G, S, k, forced=18):
                    attempt(f"fused mha {shp}", select_fused_mha, K_t, i1, qh, lens, k, 16, 2,
                            lean=True, fallback_block=128)  # fmt: skip
                idx = torch.zeros(B, Hkv, k, dtype=torch.int32)
                attempt(f"step2 {shp}", sparse_attention, q, K, K, idx, lens, 0.1)
    if not only_attend:  # the end-to-end benchmark model's own kernels
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import _llama

        x = torch.empty(16, 4096).bfloat16()
        eps = torch.finfo(torch.bfloat16).eps
        attempt("e2e model rms", _llama._rms_norm_kernel[(16,)], x, x, 4096, eps, BLOCK=4096,
                num_warps=8)  # fmt: skip
        attempt("e2e model add_rms", _llama._add_rms_kernel[(16,)], x, x, x, 4096, eps,
                BLOCK=4096, num_warps=8)  # fmt: skip
        gu = torch.empty(16, 2 * 14336).bfloat16()
        act = torch.empty(16, 14336).bfloat16()
        attempt("e2e model swiglu", _llama._swiglu_kernel[(16, 14)], gu, act, 14336, BLOCK=1024)
    print(f"{len(failed)} failed" + (": " + "; ".join(failed) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
