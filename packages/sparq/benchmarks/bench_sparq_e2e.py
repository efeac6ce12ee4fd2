"""End-to-end greedy decoding of a random-init Llama-style model with SparQ vs dense attention.

Hidden 4096, 32 query heads, 8 KV heads, 8 layers, cache pre-filled with 32k random K/V, batch 16,
64 greedy steps, each step one CUDA-graph replay. The dense side is the faster of PyTorch SDPA
(GQA, masked to the live length) and the dense Triton split-KV decode (our step-2 kernel over all
positions). Also checks that r = dh, k >= S reproduces the dense tokens exactly.
"""

from __future__ import annotations

import os
import time

import torch
from _llama import LlamaShape, TinyLlama, fused_ops_agree
from monobench import Measure, case

# readback=1: every step's tokens are copied to the host before the next step is launched (as a
# serving loop does to detokenise and check stop conditions); 0: the tokens stay on the device
# and the steps are issued back to back
_FULL = {"batch": 16, "prefill": 32768, "steps": 64, "layers": 8, "hidden": 4096, "ffn": 14336}
FULL = [{**_FULL, "readback": 0}, {**_FULL, "readback": 1}]
QUICK = [{"batch": 2, "prefill": 96, "steps": 3, "layers": 2, "hidden": 256, "ffn": 512,
          "readback": 1}]  # fmt: skip


def _attn_fns(r, k, window, sinks, dh):
    from sparq.kernels import dense_decode, sparq_attention_triton, sparse_attention

    def sdpa(q, K, V, K_t, vm, lens):
        return dense_decode(q, K, V, lens, dh**-0.5)

    cache = {}

    def triton_dense(q, K, V, K_t, vm, lens):
        S = K.shape[2]
        key = (S, K.shape[0], K.shape[1], q.device)
        if key not in cache:
            cache[key] = (
                torch.arange(S, device=q.device, dtype=torch.int32)
                .expand(K.shape[0], K.shape[1], S)
                .contiguous()
            )
        return sparse_attention(q, K, V, cache[key], lens, dh**-0.5)

    def sparq(q, K, V, K_t, vm, lens, fallback=True):
        return sparq_attention_triton(
            q, K, V, r=r, k=k, local_window=window, sink_tokens=sinks, v_mean=vm, K_t=K_t,
            seq_lens=lens, reallocation=False, dense_fallback=fallback,
        )  # fmt: skip

    def sparq_forced(q, K, V, K_t, vm, lens):
        return sparq(q, K, V, K_t, vm, lens, fallback=False)

    return {"sdpa": sdpa, "triton_dense": triton_dense, "sparq": sparq,
            "sparq_forced": sparq_forced}  # fmt: skip


@case("sparq_e2e_decode", params=FULL, quick_params=QUICK, devices=("cpu", "cuda"))
def bench_e2e(batch, prefill, steps, layers, hidden, ffn, device, readback=0):
    """Greedy decode tokens/s of a Llama-style model: SparQ (1/8 transfers) vs dense."""
    if device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("on CPU the kernels run only under TRITON_INTERPRET=1")
    shape = LlamaShape(hidden=hidden, heads=32 if hidden >= 4096 else 4,
                       kv_heads=8 if hidden >= 4096 else 2, layers=layers, ffn=ffn,
                       vocab=32000 if hidden >= 4096 else 512)  # fmt: skip
    dtype = torch.bfloat16 if device == "cuda" else torch.float16
    max_len = prefill + steps
    # the small per-layer operations (norms, rotary + cache writes, SwiGLU) as fused kernels
    # when they reproduce the plain step, as an inference engine would run them; the model is
    # shared by the SparQ and the dense runs
    # SPARQ_E2E_MODEL: options of the model's own operations, e.g. "add_rms,weights_t" (the
    # residual adds fused into the norms, the weights stored transposed, the projections on the
    # skinny Triton GEMM where it beats cuBLAS, with SwiGLU and the residual adds in its
    # epilogue: "triton_gemm"); same maths. Default "triton_gemm" (the H200 runs of 2026-11-30
    # 12:02 and 12:11 UTC: 2442-2446 us per step vs 2555-2558 with cuBLAS and "weights_t";
    # "" for cuBLAS on the plain layout)
    spec = os.environ.get("SPARQ_E2E_MODEL", "triton_gemm")
    opts = {o.strip() for o in spec.split(",") if o.strip()}
    unknown = opts - {"add_rms", "weights_t", "triton_gemm"}
    if unknown:
        raise ValueError(f"SPARQ_E2E_MODEL: unknown option(s) {sorted(unknown)}; use a comma-"
                         "separated subset of add_rms, weights_t, triton_gemm")  # fmt: skip
    add_rms, weights_t = "add_rms" in opts, "weights_t" in opts
    why_not_fused = fused_ops_agree(device, dtype, add_rms=add_rms)
    model = TinyLlama(shape, batch, max_len, device, dtype, fused=why_not_fused is None,
                      add_rms=add_rms and why_not_fused is None, weights_t=weights_t,
                      gemm="triton" if "triton_gemm" in opts and why_not_fused is None
                      else "cublas")  # fmt: skip
    model.prefill_random(prefill)
    dh = model.dh
    r, k = dh // 8, max(1, prefill // 16)  # compression 1/8 by the gpt-fast rule
    fns = _attn_fns(r, k, 64 if prefill > 256 else 4, 4, dh)
    exact = _attn_fns(dh, max_len, 0, 0, dh)["sparq_forced"]
    lens0 = model.lens.clone()
    vms0 = [v.clone() for v in model.v_mean]
    tok0 = torch.randint(0, shape.vocab, (batch,), device=device)

    def reset():
        model.lens.copy_(lens0)
        model.tok.copy_(tok0)
        for v, v0 in zip(model.v_mean, vms0):
            v.copy_(v0)

    def runner(attn):
        if device == "cpu":
            step = lambda: model.step(attn)  # noqa: E731
        else:
            reset()
            model.step(attn)  # compile the kernels outside the capture
            reset()
            st = torch.cuda.Stream()
            st.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(st):
                model.step(attn)
            torch.cuda.current_stream().wait_stream(st)
            reset()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                model.step(attn)
            step = graph.replay

        def run():
            reset()
            toks = []
            for _ in range(steps):
                step()
                # readback: the host waits for this step's tokens (one synchronisation per step)
                toks.append(model.tok.tolist() if readback else model.tok.clone())
            if readback:
                return torch.tensor(toks, dtype=torch.int64).T
            return torch.stack(toks, 1)

        return run

    runs = {name: runner(fn) for name, fn in fns.items()}
    runs["sparq_exact"] = runner(exact)
    extra = {"r": r, "k": k, "batch": batch, "prefill": prefill, "steps": steps,
             "readback_every_step": bool(readback),
             "fused_model_ops": why_not_fused is None, "model_add_rms": model.add_rms,
             "model_weights_t": weights_t, "model_gemm_tuning": model.gemm_tuning,
             "model_options": sorted(opts)}  # fmt: skip
    if why_not_fused is not None:
        extra["fused_model_ops_error"] = why_not_fused

    def check():
        toks = {name: run() for name, run in runs.items()}
        extra["tokens_equal_sparq_exact_vs_triton_dense"] = bool(
            torch.equal(toks["sparq_exact"], toks["triton_dense"])
        )
        extra["tokens_equal_sparq_exact_vs_sdpa"] = bool(
            torch.equal(toks["sparq_exact"], toks["sdpa"])
        )
        extra["tokens_equal_sparq_exact_vs_sdpa_fraction"] = float(
            (toks["sparq_exact"] == toks["sdpa"]).float().mean()
        )
        extra["tokens_equal_triton_dense_vs_sdpa_fraction"] = float(
            (toks["triton_dense"] == toks["sdpa"]).float().mean()
        )
        extra["tokens_equal_sparq_1_8_vs_sdpa_fraction"] = float(
            (toks["sparq"] == toks["sdpa"]).float().mean()
        )
        if not extra["tokens_equal_sparq_exact_vs_triton_dense"]:
            raise AssertionError("r = dh, k >= S does not reproduce the dense tokens")
        if device == "cuda":
            for name in ("sdpa", "triton_dense"):
                runs[name]()
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                runs[name]()
                torch.cuda.synchronize()
                extra[f"t_{name}_s"] = time.perf_counter() - t0
            extra["dense_choice"] = min(("sdpa", "triton_dense"), key=lambda n: extra[f"t_{n}_s"])
            runs["sparq_forced"]()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            runs["sparq_forced"]()
            torch.cuda.synchronize()
            extra["t_sparq_no_fallback_s"] = time.perf_counter() - t0
            from sparq.kernels import dense_decode_is_faster

            extra["dense_fallback_taken"] = dense_decode_is_faster(
                batch, shape.heads, shape.kv_heads, max_len, dh, r, k
            )

    def baseline():
        return runs[extra.get("dense_choice", "sdpa")]()

    return Measure(
        candidate=runs["sparq"],
        baseline=baseline,
        candidate_label="sparq_triton_graph (automatic dense fallback)",
        baseline_label="dense (faster of sdpa, triton split-KV)",
        warmup=1,
        repeats=3 if device == "cuda" else 1,
        extra=extra,
        check=check,
    )
