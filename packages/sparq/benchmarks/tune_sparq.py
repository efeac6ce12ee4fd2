"""Per-shape tuning of the SparQ kernels: correctness of every variant first, then timings.

Usage: ``python tune_sparq.py OUT_DIR [--smoke] [--fast] [--budget SECONDS] [--only K3,K2]
[--base TABLE.json] [--attend attend,attend_fr,...]``. ``--attend`` keeps the base entries'
stages and times them against the fused selection + attention variants (``ATTEND``).
``--fast`` times a short list of launch variants per stage (``FAST``);
``--base`` starts from an earlier table (same GPU model) so shapes not tuned now keep their
entries; ``--only`` tunes the named shapes in the given order.

For each decode shape (K1-K4 of the acceptance list and the end-to-end layer shape) and each
stage (step 1 approximate logits, top-k selection, step 2 sparse attention) every launch variant
is first checked against the pure-torch references (step 1: logits within 1e-4 of the logit
scale; selection: exactly k sorted positions whose fp32 keys dominate every unselected key and
that keep every window/sink position, alpha within 1e-5; step 2: at most twice the error of a
bf16 torch computation against fp32), then timed as CUDA-graph replays over rotating input sets
(working set well above the 60 MB L2, 100 replays, CUDA events). The fastest correct variant of
each stage forms the shape's entry; the whole pipeline is then checked against
``sparq_attention_reference`` and timed against dense decode attention (SDPA) to record whether
dense is faster. Results go to ``OUT_DIR/sparq_tuned.json``: ``device``, ``date``, ``shapes``
(the table read by ``sparq.kernels``; copy the file to ``src/sparq/kernels/tuned.json`` or point
``SPARQ_TUNED_JSON`` at it) and ``detail`` (every variant's check and time). The file is
rewritten after every shape, and a time budget stops starting new variants, so a cut run keeps
what it measured: a shape cut inside its tuning still gets an entry from the stages measured
before the cut (the dispatch defaults fill in the rest; ``detail[shape]["budget_cut"]`` names the
first skipped stage), checked against the reference and timed against dense like any other.
``--smoke`` runs tiny shapes (on CPU under ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _graphs import graph_replay, seconds_per_call

SHAPES = {
    "K1": dict(B=64, Hq=32, Hkv=32, S=16384, r=16, k=1024, realloc=True),
    "K2": dict(B=32, Hq=32, Hkv=8, S=32768, r=16, k=2048, realloc=False),
    "E2E": dict(B=16, Hq=32, Hkv=8, S=32832, r=16, k=2048, realloc=False),
    "K4": dict(B=1, Hq=32, Hkv=32, S=4096, r=16, k=512, realloc=True),
    "K3": dict(B=1, Hq=32, Hkv=8, S=131072, r=16, k=8192, realloc=False),
}
# k must exceed WINDOW + SINKS: with more forced positions than k the reference breaks the ties
# among them arbitrarily (torch.topk), so its alpha would not be comparable.
SMOKE = {
    "tiny_gqa": dict(B=2, Hq=4, Hkv=2, S=300, r=8, k=80, realloc=False),
    "tiny_mha": dict(B=2, Hq=2, Hkv=2, S=260, r=8, k=72, realloc=True),
}
DH, WINDOW, SINKS = 128, 64, 4
STEP1 = [
    {"tile": 512, "num_warps": 4, "fma": False},
    {"tile": 512, "num_warps": 4, "fma": True},
    {"tile": 256, "num_warps": 4, "fma": True},
    {"tile": 256, "num_warps": 2, "fma": True},
    {"tile": 1024, "num_warps": 8, "fma": True},
    {"tile": 1024, "num_warps": 4, "fma": False},
    {"tile": 256, "num_warps": 4, "fma": False},
    # row-loop multiply-adds (no 16-row padding of the heads, no cross-thread reduction)
    {"tile": 512, "num_warps": 4, "fma": False, "rows": True},
    {"tile": 1024, "num_warps": 4, "fma": False, "rows": True},
    {"tile": 2048, "num_warps": 8, "fma": False, "rows": True},
    {"tile": 256, "num_warps": 4, "fma": False, "rows": True},
    # one head per group: the tensor-core path with all 16 padded rows in the statistics
    {"tile": 512, "num_warps": 4, "fma": False, "row1": False},
    {"tile": 1024, "num_warps": 8, "fma": False, "rows": True},
    {"tile": 512, "num_warps": 8, "fma": False, "rows": True},
    {"tile": 2048, "num_warps": 4, "fma": False, "rows": True},
    {"tile": 1024, "num_warps": 2, "fma": False, "rows": True},
    # tile-major grids: the programs running together stream through neighbouring tiles
    {"tile": 1024, "num_warps": 4, "fma": False, "rows": True, "tile_major": True},
    {"tile": 2048, "num_warps": 4, "fma": False, "rows": True, "tile_major": True},
    {"tile": 512, "num_warps": 4, "fma": False, "rows": True, "tile_major": True},
]
MHA_ONLY_STEP1 = (11,)  # variants that differ from others only when G == 1
SELECT = {
    "hist": {},
    "hist_ch2048": {"chunk": 2048},
    "hist_ch512": {"chunk": 512},
    "hist_ch512_w2": {"chunk": 512, "num_warps": 2},
    "sampled": {},
    "sampled_w4": {"num_warps": 4},
    "sampled_w16": {"num_warps": 16},
    "sampled_ch512": {"chunk": 512},
    "sampled_ch2048": {"chunk": 2048},
    "hist_fr": {"fuse_resolve": True},
    "hist_ch512_fr": {"chunk": 512, "fuse_resolve": True},
    "hist_s512_fr": {"samples": 512, "thr_warps": 8, "fuse_resolve": True},
    "hist_lean": {"lean": True},
    "hist_ch512_lean": {"chunk": 512, "lean": True},
    "hist_s512_lean": {"samples": 512, "lean": True},
    "hist_s512_w8_lean": {"samples": 512, "thr_warps": 8, "lean": True},
    "sampled_lean": {"lean": True, "fallback_block": 128},
    "sampled_ch2048_lean": {"chunk": 2048, "lean": True, "fallback_block": 128},
    "sampled_lean_s1024": {"lean": True, "fallback_block": 128, "samples": 1024},
    "sampled_ch1024_lean_cw8": {
        "chunk": 1024,
        "lean": True,
        "fallback_block": 128,
        "cand_warps": 8,
    },
    "hist_s256_w8_lean": {"samples": 256, "thr_warps": 8, "lean": True},
    "hist_s512_w4_lean": {"samples": 512, "thr_warps": 4, "lean": True},
    "hist_s512_w8_lean_cw8": {"samples": 512, "thr_warps": 8, "lean": True, "num_warps": 8},
    "hist_ch2048_s512_w8_lean": {"chunk": 2048, "samples": 512, "thr_warps": 8, "lean": True},
    "sampled_lean_s512": {"lean": True, "fallback_block": 128, "samples": 512},
    "sampled_lean_s1024_w4": {"lean": True, "fallback_block": 128, "samples": 1024, "num_warps": 4},
    "sampled_lean_s1024_w16": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 16,
    },
    "sampled_lean_s1024_fb512": {"lean": True, "samples": 1024},
    # radix-256 histogram searches (tl.histogram) for the thresholds and the exact k-th key
    "sampled_lean_s1024_h": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "hist_search": True,
    },
    "sampled_lean_h": {"lean": True, "fallback_block": 128, "hist_search": True},
    "sampled_lean_s1024_h_w4": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "hist_search": True,
        "num_warps": 4,
    },
    "sampled_lean_s1024_h_w16": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "hist_search": True,
        "num_warps": 16,
    },
    "sampled_ch512_lean_s1024_h": {
        "chunk": 512,
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "hist_search": True,
    },
    "sampled_lean_s1024_h_cw2": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "hist_search": True,
        "cand_warps": 2,
    },
    # winner count and emit in one kernel (decoupled look-back; shapes without reallocation)
    "hist_s512_w8_lean_m": {"samples": 512, "thr_warps": 8, "lean": True, "merge_emit": True},
    "hist_s512_w8_lean_cw8_m": {
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "num_warps": 8,
        "merge_emit": True,
    },
    "hist_s512_w8_lean_h_m": {
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "hist_search": True,
        "merge_emit": True,
    },
    # fewer warps in the per-row kernels (block reductions by warp shuffles, more rows per SM)
    # and the packed radix-4 searches (16 reductions instead of 32)
    "sampled_lean_s1024_w2": {"lean": True, "fallback_block": 128, "samples": 1024, "num_warps": 2},
    "sampled_lean_s1024_w4_t2": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 4,
        "thr_warps": 2,
    },
    "sampled_lean_s1024_r4_w4": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 4,
        "radix4": True,
    },
    "sampled_lean_s1024_r4_w8": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 8,
        "radix4": True,
    },
    "sampled_lean_s1024_r4_w4_t2": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 4,
        "thr_warps": 2,
        "radix4": True,
    },
    "sampled_lean_s1024_r4_w2": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 2,
        "radix4": True,
    },
    # one head per KV head: alpha from the winners' keys (their logits), no masses stored
    "sampled_lean_s1024_w4_ka": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 4,
        "key_alpha": True,
    },
    "sampled_lean_s1024_r4_w4_ka": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 4,
        "radix4": True,
        "key_alpha": True,
    },
    "hist_s512_w8_lean_cw2": {"samples": 512, "thr_warps": 8, "lean": True, "num_warps": 2},
    "hist_s512_w8_lean_cw2_m": {
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "num_warps": 2,
        "merge_emit": True,
    },
    # the live candidate slots packed into a block of 2048 keys before the search (rows with
    # more candidates search the padded slots)
    "sampled_lean_s1024_w4_d2048": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 4,
        "dense_block": 2048,
    },
    "sampled_lean_s1024_w4_ka_d2048": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 4,
        "key_alpha": True,
        "dense_block": 2048,
    },
    "sampled_lean_s1024_w8_ka_d2048": {
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 8,
        "key_alpha": True,
        "dense_block": 2048,
    },
    "sampled_ch512_fc_lean_s1024_w8_ka_d2048": {
        "chunk": 512,
        "forced_cap": True,
        "lean": True,
        "fallback_block": 128,
        "samples": 1024,
        "num_warps": 8,
        "key_alpha": True,
        "dense_block": 2048,
    },
    "hist_s512_w8_lean_h": {"samples": 512, "thr_warps": 8, "lean": True, "hist_search": True},
    # candidate pass with fewer instructions per position (unmasked interior chunks, histogram
    # from the compacted candidates read back): ~116 instead of ~153 per position (sm_90 SASS)
    "hist_s512_w8_lean_fc": {"samples": 512, "thr_warps": 8, "lean": True, "fast_cand": True},
    "hist_s512_w8_lean_fc_cw2": {
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "fast_cand": True,
        "num_warps": 2,
    },
    "hist_ch2048_s512_w8_lean_fc": {
        "chunk": 2048,
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "fast_cand": True,
    },
    # the two sample thresholds read off one sort (1048 instead of 2496 sm_90 instructions per
    # thread in the 8-warp threshold kernel)
    "hist_s512_w8_lean_fc_ss": {
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "fast_cand": True,
        "sort_search": True,
    },
    "hist_s512_w4_lean_fc_ss": {
        "samples": 512,
        "thr_warps": 4,
        "lean": True,
        "fast_cand": True,
        "sort_search": True,
    },
    "hist_s512_w8_lean_ss": {"samples": 512, "thr_warps": 8, "lean": True, "sort_search": True},
    # histogram counts without returned values, the k-th key's bucket gathered by the resolve
    # kernel (03:35 UTC run: the per-candidate returning atomics and list stores cost ~22 of the
    # 76 us of K2's candidate pass)
    "hist_s512_w8_lean_fc_ss_nl": {
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "fast_cand": True,
        "sort_search": True,
        "no_lists": True,
    },
    # the k-th key's bucket gathered by one counter atomic per key instead of a scan (04:05
    # run: the scan made K2's resolve kernel 15.8 instead of 5.6 us)
    "hist_s512_w8_lean_fc_ss_nl2": {
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "fast_cand": True,
        "sort_search": True,
        "no_lists": 2,
    },
    "hist_s512_w8_lean_fc_ss_nl_r64": {
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "fast_cand": True,
        "sort_search": True,
        "no_lists": True,
        "cand_maxnreg": 64,
    },
    # at most 64 registers in the candidate pass: 8 instead of 7 resident 4-warp programs per
    # multiprocessor (no spills, sm_90)
    "hist_s512_w8_lean_fc_ss_r64": {
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "fast_cand": True,
        "sort_search": True,
        "cand_maxnreg": 64,
    },
    # chunk-major candidate pass (consecutive programs read neighbouring chunks of one row)
    "hist_s512_w8_lean_cm": {"samples": 512, "thr_warps": 8, "lean": True, "chunk_major": True},
    "hist_s512_w8_lean_cw8_cm": {
        "samples": 512,
        "thr_warps": 8,
        "lean": True,
        "num_warps": 8,
        "chunk_major": True,
    },
    "hist_s1024_w8_lean_h": {"samples": 1024, "thr_warps": 8, "lean": True, "hist_search": True},
    "sampled_r16": {"radix16": True},
    "sampled_ch2048_r16": {"chunk": 2048, "radix16": True},
    "triton": {},
    "torch": {},
}
STEP2 = [
    {"block": 64, "num_warps": 4, "num_stages": 3},
    {"block": 32, "num_warps": 4, "num_stages": 3},
    {"block": 64, "num_warps": 8, "num_stages": 3},
    {"block": 128, "num_warps": 8, "num_stages": 2},
    {"block": 64, "num_warps": 4, "num_stages": 2},
]


# --fast (the short GPU window): fewer launch variants per stage, chosen from earlier H200 runs
# (16:45 run: the FMA step 1, the 2048-position histogram chunks and torch.topk were never the
# fastest on the K2/K3/E2E shapes)
FAST = {
    # 21:56 and 22:29 runs: the row-loop step 1 was fastest on every shape (512-position tiles
    # for K1, 1024 for the GQA shapes)
    # 00:29 run: 512-position tiles with 8 warps slowest everywhere
    # 01:57 run: 8 warps at 1024-position tiles and 2 warps slower on every shape; 03:35 run:
    # tile-major grids slower (K2 141 vs 118 us, E2E 78 vs 66)
    # (K1, one head per group, keeps its committed entry: 2048-position tiles, 4 warps)
    "step1": [8, 9],
    # the histogram selection for fewer than 4*132 (batch, KV head) rows, the sampled one for
    # more (19:09 run: each lost clearly on the other side); torch.topk as a safe net. 22:29
    # run: the lean kernels with 512-key (histogram) and 1024-key (sampled) samples were fastest;
    # the resolve inside the count kernel and the radix-16 searches were slower.
    # 00:55 run: the radix-256 histogram searches were slower everywhere (K1 444 vs 276 us) and
    # the chunk-by-chunk look-back count/emit too (K2 127 vs 113 us); the look-back now reads
    # all lower chunks' words at once
    # 01:13 run: the merged count/emit still lost on K2 (123 vs 113 us) and E2E (77 vs 71),
    # tied on K3 (38.9 vs 38.8)
    # 01:57 run: 2-warp candidate passes slower (K2 131.8 vs 113.5 us), merged count/emit too
    # 03:35 run: the chunk-major candidate pass slower (K2 84 vs 76 us), fast_cand alone 75.4
    # 04:05 run: K2 fc_ss_nl 96.2 us (committed), E2E fc_ss 65.3 (committed), K3 ss 37.8; the
    # 64-register caps and 2048-position chunks never faster
    "select_few_rows": (
        "hist_s512_w8_lean_fc_ss_nl2",
        "hist_s512_w8_lean_fc_ss_nl",
        "hist_s512_w8_lean_fc_ss",
        "hist_s512_w8_lean_ss",
        "torch",
    ),
    # 01:13 run: the packed radix-4 searches (324 vs 279 us) and 2-warp final kernels (352 us)
    # were slower on K1, 2-warp thresholds no faster
    "select_many_rows": (
        "sampled_lean_s1024_w4",
        "sampled_lean_s1024_w4_ka",
        "sampled_lean_s1024_w4_d2048",
        "sampled_lean_s1024_w4_ka_d2048",
        "sampled_lean_s1024_w8_ka_d2048",
        "sampled_ch512_fc_lean_s1024_w8_ka_d2048",
        "torch",
    ),
    # 00:29-03:35 runs: 64-row blocks, 4 warps, 2 stages fastest on every shape
    "step2": [4],
    # (tile, warps, lean, fallback block[, histogram searches]); 22:29 run: no fused variant
    # beat step 1 + selection (1024-position tiles, 8 warps: 577 vs 576 us)
    "fused": [],  # 01:13 run: 588 us with radix-4 searches (step 1 + selection: 565)
}


def _step1_name(c):
    mode = "rows" if c.get("rows") else "fma" if c["fma"] else "dot"
    full = "_full" if c.get("row1") is False else ""
    return f"tile{c['tile']}_w{c['num_warps']}_{mode}{full}" + (
        "_tm" if c.get("tile_major") else ""
    )


def _sync(dev):
    if dev == "cuda":
        torch.cuda.synchronize()


def _time(fn, reps, dev):
    """Seconds per call of ``fn`` (CUDA events on the GPU, perf_counter on the CPU)."""
    return seconds_per_call(fn, reps, cuda=dev == "cuda")


def _graphed(fns, dev):
    """One callable replaying ``fns`` in turn (each captured in a CUDA graph on the GPU)."""
    if dev == "cuda":
        gs = []
        for fn in fns:
            fn()  # compile and autotune outside the capture
            gs.append(graph_replay(fn))
        fns = gs
    state = {"i": 0}

    def call():
        fns[state["i"] % len(fns)]()
        state["i"] += 1

    return call


def _make_sets(sh, dev, dt):
    B, Hq, Hkv, S, r, k = (sh[x] for x in ("B", "Hq", "Hkv", "S", "r", "k"))
    cache = 3 * B * Hkv * S * DH * 2
    sparq_bytes = B * Hkv * (S * r + 2 * k * DH) * 2
    n = 1 if dev != "cuda" else max(1, min(8, math.ceil(0.5e9 / sparq_bytes), int(40e9 // cache)))
    sets = []
    for i in range(n):
        g = torch.Generator(device=dev).manual_seed(i)
        q = torch.randn(B, Hq, 1, DH, device=dev, generator=g)
        q = (q * (1 + 4 * (torch.rand(q.shape, device=dev, generator=g) > 0.9))).to(dt)
        K = torch.randn(B, Hkv, S, DH, device=dev, generator=g, dtype=dt)
        V = torch.randn(B, Hkv, S, DH, device=dev, generator=g, dtype=dt)
        lens = torch.full((B,), S, device=dev, dtype=torch.int64)
        if B > 1:  # ragged batch: the second half of the rows ends early
            lens[B // 2 :] = S - S // 7
        valid = (torch.arange(S, device=dev)[None, :] < lens[:, None]).to(dt)
        vm = (V * valid[:, None, :, None]).float().sum(2) / lens.float()[:, None, None]
        sets.append({"q": q, "K": K, "V": V, "K_t": K.transpose(-1, -2).contiguous(),
                     "lens": lens, "vm": vm})  # fmt: skip
    return sets


def _check_selection(idx, alpha, logits, lens, k, nb, slack=0.0, alpha_check=True):
    """Selection equality up to ties against the reference keys on the first ``nb`` rows.

    ``slack``: relative tolerance for near-ties when the variant recomputes the logits itself;
    ``alpha_check=False`` for variants that skip alpha (shapes without reallocation).
    """
    from sparq.kernels import select_topk_reference

    _, ralpha, key = select_topk_reference(logits[:nb], lens[:nb], k, WINDOW, SINKS)
    idx, alpha = idx[:nb].long(), alpha[:nb]
    if not bool(torch.all(idx[..., 1:] > idx[..., :-1])):
        return "indices not sorted/distinct"
    chosen = torch.zeros_like(key, dtype=torch.bool).scatter_(-1, idx, True)
    kmin = key.masked_fill(~chosen, math.inf).amin(-1)
    kmax_out = key.masked_fill(chosen, -math.inf).amax(-1)
    if not bool(torch.all(kmin >= kmax_out - slack * kmax_out.abs())):
        return "a selected key is below an unselected one"
    n_forced = (key == math.inf).sum(-1).clamp(max=k)
    if not bool(torch.all(chosen.logical_and(key == math.inf).sum(-1) == n_forced)):
        return "window/sink positions missing"
    if alpha_check and not torch.allclose(alpha, ralpha, atol=1e-5):
        return f"alpha differs by {(alpha - ralpha).abs().max().item():.2e}"
    return None


def _few(variants, smoke, n=2):
    """All variants, or the first ``n`` in smoke mode (the CPU interpreter is slow)."""
    items = list(variants.items() if isinstance(variants, dict) else enumerate(variants))
    if smoke:
        items = items[:n]
    return dict(items) if isinstance(variants, dict) else [v for _, v in items]


def tune_shape(name, sh, dev, reps, deadline, detail, smoke=False, fast=False):
    """Tune one shape; returns its table entry (``None`` if not even one variant passed)."""
    from sparq._reference import sparq_attention_reference
    from sparq.kernels import (
        approx_logits,
        approx_logits_reference,
        dense_decode,
        prepare_query,
        select_topk,
        select_topk_hist,
        select_topk_sampled,
        select_topk_torch,
        sparq_attention_triton,
        sparse_attention,
        sparse_attention_reference,
    )
    from sparq.kernels._dispatch import _PREP
    from sparq.kernels._fused_mha import fused_mha_supported, select_fused_mha
    from sparq.kernels._select_hist import hist_supported
    from sparq.kernels._select_sample import sampled_supported
    from sparq.kernels._step2 import _num_splits

    B, Hq, Hkv, S, r, k = (sh[x] for x in ("B", "Hq", "Hkv", "S", "r", "k"))
    G, scale, nb = Hq // Hkv, DH**-0.5, min(B, 2)
    dt = torch.bfloat16 if dev == "cuda" else torch.float16
    sets = _make_sets(sh, dev, dt)
    for s in sets:
        s["i1"], s["qh"] = prepare_query(s["q"], Hkv, r, scale)
    d = detail.setdefault(name, {"shape": sh, "n_input_sets": len(sets)})
    s0 = sets[0]
    cut: list[str] = []  # stages the time budget skipped entirely

    def partial(entry):
        """Entry from the stages measured before the budget ran out (the dispatch defaults
        fill in the rest); the pipeline check and the dense verdict still run on it."""
        d["budget_cut"] = cut[0]
        return entry, sets, (sparq_attention_reference, sparq_attention_triton, dense_decode)

    def run_variants(stage, variants, check, nbytes):
        """Check then time each variant; returns the fastest correct variant's key."""
        res = d.setdefault(stage, {})
        for vname, fn_of_set in variants.items():
            if time.monotonic() > deadline:
                res[vname] = {"skipped": "time budget"}
                continue
            try:
                err = check(fn_of_set(s0))
                if err:
                    res[vname] = {"error": err}
                    continue
                calls = [lambda s=s, f=fn_of_set: f(s) for s in sets]
                t = _time(_graphed(calls, dev), reps, dev)
                res[vname] = {"s": t, "GB_s": nbytes / t / 1e9}
            except Exception as e:  # a variant that fails to compile or run is recorded
                res[vname] = {"error": repr(e)[:300]}
        ok = {v: x["s"] for v, x in res.items() if "s" in x}
        if not ok and res and all("skipped" in x for x in res.values()):
            cut.append(stage)  # the budget ran out before this stage: not a failed stage
        return min(ok, key=ok.get) if ok else None

    # query preparation: ~10 small torch kernels or one Triton kernel (same components)
    def check0(out):
        if not torch.equal(out[0].to(torch.int32), s0["i1"].to(torch.int32)):
            return "components differ"
        e = (out[1] - s0["qh"]).abs().max().item()
        return None if e <= 1e-6 * s0["qh"].abs().max().item() else f"q_hat error {e:.2e}"

    prep_fns = {n: (lambda s, f=f: f(s["q"], Hkv, r, scale)) for n, f in _PREP.items()}
    if fast:  # 00:55 run: the sorting one, one warp, was fastest on every shape (K1 8 vs 17 us)
        prep_fns = {n: prep_fns[n] for n in ("fused", "fused_sort_w1", "fused_sort_w2")}
    if smoke:
        prep_fns = {n: prep_fns[n] for n in ("torch", "fused", "fused_sort")}
    best0 = run_variants("prep", prep_fns, check0, B * Hq * DH * 2)

    # step 1: approximate logits
    ref_lg = approx_logits_reference(s0["K_t"][:nb], s0["i1"][:nb], s0["qh"][:nb], s0["lens"][:nb])
    fin = torch.isfinite(ref_lg)
    tol = 1e-4 * ref_lg[fin].abs().max().item()

    def check1(out):
        lg = out[0][:nb]
        if not torch.equal(torch.isinf(lg), torch.isinf(ref_lg)):
            return "-inf pattern differs"
        e = (lg[fin] - ref_lg[fin]).abs().max().item()
        return None if e <= tol else f"logit error {e:.2e} > {tol:.2e}"

    # smoke: the tensor-core, row-loop and (G = 1) full-statistics kernels, one launch each
    ids = (0, 7, 11) if smoke else FAST["step1"] if fast else range(len(STEP1))
    step1_list = [STEP1[i] for i in ids if G == 1 or i not in MHA_ONLY_STEP1]
    v1 = {_step1_name(c): c for c in step1_list}
    step1_fns = {
        n: (lambda s, c=c: approx_logits(s["K_t"], s["i1"], s["qh"], s["lens"], **c))
        for n, c in v1.items()
    }
    best1 = run_variants(
        "step1",
        step1_fns,
        check1,
        B * Hkv * S * (r * 2 + G * 4),
    )
    if best1 is None:
        return partial({"prep": best0 or "torch"}) if cut else None
    for s in sets:
        s["lg"], s["tm"], s["ts"] = step1_fns[best1](s)

    # selection
    fns = {"triton": select_topk, "torch": select_topk_torch}
    sel = {}
    realloc = sh["realloc"]
    skip = os.environ.get("SPARQ_TUNE_SKIP", "")
    for vname, kw in SELECT.items():
        if smoke and vname not in ("sampled", "sampled_lean", "hist", "hist_lean", "triton",
                                   "torch", "sampled_ch512_fc_lean_s1024_w8_ka_d2048",
                                   "hist_s512_w8_lean_m",
                                   "hist_s512_w8_lean_fc_ss_nl"):  # fmt: skip
            continue
        if skip and vname.endswith(skip):  # gpu_run.sh: their GPU test failed
            continue
        if fast and vname not in FAST["select_few_rows" if B * Hkv < 4 * 132 else
                                     "select_many_rows"]:  # fmt: skip
            continue
        if vname.startswith("hist"):
            if not hist_supported(S, k):
                continue
            # alpha only where the shape blends with the mean value (as the dispatch does)
            sel[vname] = lambda s, kw=kw: select_topk_hist(
                s["lg"], s["tm"], s["ts"], s["lens"], k, WINDOW, SINKS, need_alpha=realloc, **kw
            )
        elif vname.startswith("sampled"):
            if not sampled_supported(S, k, kw.get("chunk")):
                continue
            sel[vname] = lambda s, kw=kw: select_topk_sampled(
                s["lg"], s["tm"], s["ts"], s["lens"], k, WINDOW, SINKS, need_alpha=realloc, **kw
            )
        else:
            sel[vname] = lambda s, f=fns[vname]: f(
                s["lg"], s["tm"], s["ts"], s["lens"], k, WINDOW, SINKS
            )
    best_sel = run_variants(
        "select",
        sel,
        lambda out: _check_selection(
            out[0], out[1], s0["lg"], s0["lens"], k, nb, alpha_check=realloc
        ),
        B * Hkv * S * G * 4,
    )
    if best_sel is None:
        return partial({"prep": best0 or "torch", "step1": v1[best1]}) if cut else None
    for s in sets:
        s["idx"], s["alpha"] = sel[best_sel](s)
    if best_sel.startswith("hist") and time.monotonic() < deadline:
        # where the histogram selection spends its time: cumulative times of its first n kernels
        # (threshold, candidates, resolve, count, emit)
        hkw = {**SELECT[best_sel], "need_alpha": realloc}
        d["hist_kernels_cumulative_s"] = [
            _time(_graphed([lambda s=s, n=n: select_topk_hist(
                s["lg"], s["tm"], s["ts"], s["lens"], k, WINDOW, SINKS, _stop_after=n, **hkw)
                for s in sets], dev), reps, dev)
            for n in range(1, 6)
        ]  # fmt: skip
    fused_kw = None
    if fused_mha_supported(G, S, k, forced=WINDOW + SINKS) and (FAST["fused"] or not fast):
        # step 1 fused with the candidate filter (one head per KV head): vs best step 1 + select
        fl = FAST["fused"] if fast else [(512, 4, False, 256), (256, 4, False, 256),
                                         (1024, 8, False, 256), (512, 8, False, 256),
                                         (1024, 8, True, 64)]  # fmt: skip
        if smoke:
            fl = [(64, 4, True, 64, "r4")]
        # optional fifth field: True (histogram searches) or "r4" (packed radix-4 searches)
        sfx = {True: "_h", "r4": "_r4"}
        fz = {f"fused_tile{t}_w{w}" + ("_lean" if ln else "") + sfx.get(x, ""):
              {"tile": t, "num_warps": w, "lean": ln, "fallback_block": fb,
               "hist_search": x is True, "radix4": x == "r4"}
              for t, w, ln, fb, *ex in fl for x in [ex[0] if ex else None]}  # fmt: skip
        fused_fns = {
            n: (lambda s, c=c: select_fused_mha(
                s["K_t"], s["i1"], s["qh"], s["lens"], k, WINDOW, SINKS, **c))
            for n, c in fz.items()
        }  # fmt: skip
        best_f = run_variants(
            "fused",
            fused_fns,
            # fp32 logits recomputed in another summation order: 1e-5 relative near-tie slack
            lambda out: _check_selection(out[0], out[1], s0["lg"], s0["lens"], k, nb, 1e-5),
            B * Hkv * S * r * 2,
        )
        t_two = d["step1"][best1]["s"] + d["select"][best_sel]["s"]
        if best_f is not None and d["fused"][best_f]["s"] < t_two:
            fused_kw = fz[best_f]

    # step 2: sparse attention (+ reallocation)

    def s2_args(s):
        a = s["alpha"].reshape(B, Hq) if realloc else None
        return s["q"], s["K"], s["V"], s["idx"], s["lens"], scale, a, s["vm"] if realloc else None

    a0 = s2_args(s0)
    a0n = [x[:nb] if torch.is_tensor(x) else x for x in a0]
    y32 = sparse_attention_reference(*a0n).float()
    ylo = sparse_attention_reference(*a0n, compute_dtype=dt).float()
    bound = 2 * (ylo - y32).abs().max().item() + 2**-8 * y32.abs().max().item()

    def check2(y):
        e = (y[:nb].float() - y32).abs().max().item()
        return None if e <= bound and math.isfinite(e) else f"error {e:.2e} > {bound:.2e}"

    v2 = {}
    for c in _few([STEP2[i] for i in FAST["step2"]] if fast else STEP2, smoke, 1):
        base = _num_splits(B * Hkv, k, c["block"])
        for nsp in _few(sorted({base, 2 * base, max(1, base // 2)}), smoke, 1):
            v2[f"bk{c['block']}_w{c['num_warps']}_st{c['num_stages']}_sp{nsp}"] = {
                **c, "num_splits": nsp}  # fmt: skip
    best2 = run_variants(
        "step2",
        {n: (lambda s, c=c: sparse_attention(*s2_args(s), **c)) for n, c in v2.items()},
        check2,
        B * Hkv * k * DH * 2 * 2,
    )
    if best2 is None and not cut:
        return None
    entry = {
        "prep": best0 or "torch",
        "selection": best_sel.split("_")[0],
        "selection_variant": best_sel,
        "step1": v1[best1],
    }
    if best2 is not None:
        entry["step2"] = v2[best2]
    sel_kw = SELECT[best_sel]
    if sel_kw:
        entry["selection_kw"] = sel_kw
    if fused_kw is not None:
        entry.update(selection="fused", selection_variant="fused", selection_kw=fused_kw)
    if cut:
        return partial(entry)
    return entry, sets, (sparq_attention_reference, sparq_attention_triton, dense_decode)


def pipeline(name, sh, dev, reps, entry, sets, fns, detail):
    """Check the tuned pipeline against the package reference, time it against dense SDPA."""
    sparq_attention_reference, sparq_attention_triton, dense_decode = fns
    B, r, k = sh["B"], sh["r"], sh["k"]
    nb = min(B, 2)
    kw = {"r": r, "k": k, "local_window": WINDOW, "sink_tokens": SINKS,
          "reallocation": sh["realloc"]}  # fmt: skip

    def sparq(s):
        return sparq_attention_triton(s["q"], s["K"], s["V"], K_t=s["K_t"], v_mean=s["vm"],
                                      seq_lens=s["lens"], dense_fallback=False, **kw)  # fmt: skip

    def dense(s):
        # unmasked SDPA (its fastest kernel): the verdict is conservative for SparQ
        return dense_decode(s["q"], s["K"], s["V"], None, DH**-0.5)

    s0 = sets[0]
    y = sparq(s0)[:nb].float()
    ref = sparq_attention_reference(
        s0["q"][:nb], s0["K"][:nb], s0["V"][:nb], K_t=s0["K_t"][:nb], v_mean=s0["vm"][:nb],
        seq_lens=s0["lens"][:nb], **kw,
    ).float()  # fmt: skip
    err = (y - ref).abs().max().item() / max(1e-6, ref.abs().max().item())
    p = detail[name]["pipeline"] = {"rel_err_vs_fp32_reference": err}
    if not (math.isfinite(err) and err <= 3e-2):
        p["error"] = "pipeline output differs from the reference"
        entry["dense_faster"] = True
        return
    t_s = p["t_sparq_serial_s"] = _time(
        _graphed([lambda s=s: sparq(s) for s in sets], dev), reps, dev
    )
    if dev == "cuda" and os.environ.get("SPARQ_TUNE_MODES", "1") == "1":
        # launch modes: programmatic dependent launch, L2 eviction hints, both
        modes = {"l2": {"SPARQ_L2": "1"}}
        if os.environ.get("SPARQ_TUNE_PDL", "1") == "1":
            # early (1) and late (2) trigger of the next kernel's launch
            modes = {"pdl": {"SPARQ_PDL": "1"}, "pdl_late": {"SPARQ_PDL": "2"}, **modes,
                     "pdl_l2": {"SPARQ_PDL": "1", "SPARQ_L2": "1"}}  # fmt: skip
        best, best_env = t_s, {}
        for mname, env in modes.items():
            t_m = _time_mode(sparq, sets, s0, nb, reps, dev, p, mname, env)
            if t_m is not None and t_m < best:
                best, best_env = t_m, env
        entry["pdl"] = int(best_env.get("SPARQ_PDL", 0))
        entry["l2"] = "SPARQ_L2" in best_env
        t_s = best
    t_d = _time(_graphed([lambda s=s: dense(s) for s in sets], dev), reps, dev)
    p.update({"t_sparq_s": t_s, "t_dense_s": t_d, "speedup": t_d / t_s})
    entry.update({"t_sparq_s": t_s, "t_dense_s": t_d, "dense_faster": t_d <= t_s})


def _time_mode(sparq, sets, s0, nb, reps, dev, p, mname, env):
    """Graph-replay time of the tuned pipeline in one launch mode (environment ``env``, e.g.
    ``SPARQ_PDL=1``), or ``None``. First checked: a replayed graph of set 0 must give exactly
    the output of the serialised eager call (with overlapping launches a missing wait would
    show as a race here)."""
    want = sparq(s0)[:nb].clone()
    os.environ.update(env)
    modes = p.setdefault("modes_s", {})
    try:
        sparq(s0)  # compile outside the capture
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            out = sparq(s0)
        diff = 0.0
        for _ in range(5):
            g.replay()
            torch.cuda.synchronize()
            diff = max(diff, (out[:nb].float() - want.float()).abs().max().item())
        if diff != 0.0:
            p[f"{mname}_error"] = f"graph replay differs from the serialised output by {diff:.2e}"
            return None
        t = modes[mname] = _time(_graphed([lambda s=s: sparq(s) for s in sets], dev), reps, dev)
        return t
    except Exception as e:  # an unsupported launch: keep the serialised pipeline
        p[f"{mname}_error"] = repr(e)[:300]
        return None
    finally:
        for k in env:
            os.environ.pop(k, None)


def _pdl_only(shapes, table, path, dev, reps, deadline):
    """``--pdl-only``: for every shape with a base entry, check the pipeline against the
    reference and time it serialised, with programmatic dependent launch and dense (no stage
    re-tuning); the entry gets ``"pdl": true`` where that was faster."""
    from sparq._reference import sparq_attention_reference
    from sparq.kernels import _tuned, dense_decode, sparq_attention_triton
    from sparq.kernels._tuned import shape_key

    fns = (sparq_attention_reference, sparq_attention_triton, dense_decode)
    dt = torch.bfloat16 if dev == "cuda" else torch.float16
    for name, sh in shapes.items():
        if time.monotonic() > deadline:
            table["detail"][name] = {"skipped": "time budget"}
            break
        t0 = time.monotonic()
        key = shape_key(sh["B"], sh["Hq"], sh["Hkv"], sh["S"], DH, sh["r"], min(sh["k"], sh["S"]))
        base = table["shapes"].get(key)
        if base is None:
            table["detail"][name] = {"skipped": "no base entry"}
            continue
        entry = {k: v for k, v in base.items() if k not in ("pdl", "l2")}
        table["shapes"][key] = entry
        path.write_text(json.dumps(table, indent=1))
        _tuned.reload()
        d = table["detail"].setdefault(name, {"shape": sh})
        try:
            sets = _make_sets(sh, dev, dt)
            d["n_input_sets"] = len(sets)
            pipeline(name, sh, dev, reps, entry, sets, fns, table["detail"])
            del sets
        except Exception as e:  # keep the base entry
            d["error"] = repr(e)[:300]
            table["shapes"][key] = base
        d["tune_seconds"] = time.monotonic() - t0
        path.write_text(json.dumps(table, indent=1))
        _tuned.reload()
        p = d.get("pipeline", {})
        modes = " ".join(f"{m}={v * 1e6:.1f}us" for m, v in p.get("modes_s", {}).items())
        errs = " ".join(f"{k}: {v}" for k, v in p.items() if k.endswith("_error"))
        print(f"{name:4s} {key}: pdl={entry.get('pdl', False)} l2={entry.get('l2', False)} "
              f"serial={p.get('t_sparq_serial_s', 0) * 1e6:.1f}us {modes} "
              f"best={p.get('t_sparq_s', 0) * 1e6:.1f}us "
              f"dense={p.get('t_dense_s', 0) * 1e6:.1f}us speedup={p.get('speedup', 0):.3f} "
              f"{errs} ({time.monotonic() - t0:.0f}s)", flush=True)  # fmt: skip
        if dev == "cuda":
            torch.cuda.empty_cache()


# --attend: entry patches timed against each shape's committed entry (histogram selection
# without reallocation): the chunks of the selection attend their own winners (no count/emit
# kernels, no index list, no separate step 2); "fused_resolve": every chunk resolves its row
# itself (no resolve kernel; needs the bucket lists, so a no_lists entry drops them); "merge":
# the last chunk program of a row merges the row (no merge kernel); "thr_in_cand": no threshold
# kernel, the candidate programs derive their row's thresholds (few rows only); "prep":
# "in_step1": no query-preparation kernel, step 1 prepares the query itself
ATTEND = {
    "attend_fr_m": {"attend": {"fused_resolve": True, "merge": True}},
    "attend_fr": {"attend": {"fused_resolve": True}},
    "attend": {"attend": {}},
    "attend_m": {"attend": {"merge": True}},
    "attend_fr_m_ss": {"attend": {"fused_resolve": True, "merge": True},
                       "selection_kw": {"sort_search": True}},
    "attend_fr_m_bk128_w8": {"attend": {"fused_resolve": True, "merge": True, "block": 128,
                                        "attend_warps": 8}},
    "attend_fr_m_t": {"attend": {"fused_resolve": True, "merge": True, "thr_in_cand": True}},
    "attend_fr_m_t_ss": {"attend": {"fused_resolve": True, "merge": True, "thr_in_cand": True},
                         "selection_kw": {"sort_search": True}},
    "attend_fr_m_p": {"attend": {"fused_resolve": True, "merge": True}, "prep": "in_step1"},
    "attend_fr_m_t_p": {"attend": {"fused_resolve": True, "merge": True, "thr_in_cand": True},
                        "prep": "in_step1"},
    "attend_fr_m_t_ss_p": {"attend": {"fused_resolve": True, "merge": True,
                                      "thr_in_cand": True},
                           "selection_kw": {"sort_search": True}, "prep": "in_step1"},
    "attend_fr_bk32": {"attend": {"fused_resolve": True, "block": 32}},
    # the lean layout: as many programs per row as the entry's step 2 has splits (each walks
    # the winners of consecutive chunks), the exact fallback in the merge kernel
    "sp": {"attend": {"splits": ("step2", 1)}},
    "sp_x2": {"attend": {"splits": ("step2", 2)}},
    "sp_half": {"attend": {"splits": ("step2", 0.5)}},
    "sp_bk32": {"attend": {"splits": ("step2", 1), "block": 32}},
    "sp_w8": {"attend": {"splits": ("step2", 1), "attend_warps": 8}},
    # one block of 128 candidate slots per step: about one step per chunk (~1.75 k CH / S
    # candidates), 8 warps for the (128, dh) K and V tiles
    "sp_bk128_w8": {"attend": {"splits": ("step2", 1), "block": 128, "attend_warps": 8}},
    "sp_x2_bk128_w8": {"attend": {"splits": ("step2", 2), "block": 128, "attend_warps": 8}},
    # refinements of an entry that already attends (round-2 tuning)
    "w8": {"attend+": {"attend_warps": 8}},
    "bk32": {"attend+": {"block": 32}},
    "bk128_w8": {"attend+": {"block": 128, "attend_warps": 8}},
    "st3": {"attend+": {"num_stages": 3}},
    "t512": {"step1+": {"tile": 512}},
    "t2048_w8": {"step1+": {"tile": 2048, "num_warps": 8}},
    "ss": {"selection_kw": {"sort_search": True}},
    "p": {"prep": "in_step1"},
    "attend_fr_ss": {"attend": {"fused_resolve": True}, "selection_kw": {"sort_search": True}},
}  # fmt: skip


def _patched(base, patch):
    """``base`` entry with ``patch`` applied (``selection_kw`` merged; ``"attend+"`` and
    ``"step1+"`` merged into the base entry's ``attend`` / ``step1``)."""
    e = {
        k: v
        for k, v in base.items()
        if k not in ("pdl", "l2", "t_sparq_s", "t_dense_s", "dense_faster", "attend_variant")
    }
    skw = {**base.get("selection_kw", {}), **patch.get("selection_kw", {})}
    att = patch.get("attend")
    if "attend+" in patch and "attend" in base:
        att = {**base["attend"], **patch["attend+"]}
    if att is not None:
        att = dict(att)
        if isinstance(att.get("splits"), (list, tuple)):  # ("step2", f): f x the step-2 splits
            base_sp = base.get("step2", {}).get("num_splits", 8)
            att["splits"] = max(1, round(base_sp * att["splits"][1]))
        e["attend"] = att
        if att.get("fused_resolve"):
            skw.pop("no_lists", None)
    if "step1+" in patch:
        e["step1"] = {**base.get("step1", {}), **patch["step1+"]}
    e["selection_kw"] = skw
    e.update(
        {k: v for k, v in patch.items() if k not in ("attend", "attend+", "step1+", "selection_kw")}
    )
    return e


def _attend_only(shapes, table, path, dev, reps, deadline, names):
    """``--attend``: for every shape with a histogram base entry, the base entry and each
    ``ATTEND`` patch: the pipeline checked against the package reference (as ``pipeline``),
    then timed as graph replays serialised and with programmatic dependent launch (each mode's
    replay first checked to equal the serialised output), with the base entry's L2 setting;
    the fastest becomes the entry (dense timed once per shape)."""
    from sparq._reference import sparq_attention_reference
    from sparq.kernels import _tuned, dense_decode, sparq_attention_triton
    from sparq.kernels._tuned import shape_key

    dt = torch.bfloat16 if dev == "cuda" else torch.float16
    for name, sh in shapes.items():
        if time.monotonic() > deadline:
            table["detail"][name] = {"skipped": "time budget"}
            break
        t0 = time.monotonic()
        key = shape_key(sh["B"], sh["Hq"], sh["Hkv"], sh["S"], DH, sh["r"], min(sh["k"], sh["S"]))
        base = table["shapes"].get(key)
        d = table["detail"].setdefault(name, {"shape": sh})
        if base is None or base.get("selection") != "hist" or sh["realloc"]:
            d["skipped"] = "no histogram base entry without reallocation"
            continue
        r, k, nb = sh["r"], sh["k"], min(sh["B"], 2)
        kw = {"r": r, "k": k, "local_window": WINDOW, "sink_tokens": SINKS,
              "reallocation": sh["realloc"]}  # fmt: skip

        def sparq(s, kw=kw):
            return sparq_attention_triton(s["q"], s["K"], s["V"], K_t=s["K_t"],
                                          v_mean=s["vm"], seq_lens=s["lens"],
                                          dense_fallback=False, **kw)  # fmt: skip

        sets = _make_sets(sh, dev, dt)
        s0 = sets[0]
        ref = sparq_attention_reference(
            s0["q"][:nb], s0["K"][:nb], s0["V"][:nb], K_t=s0["K_t"][:nb], v_mean=s0["vm"][:nb],
            seq_lens=s0["lens"][:nb], **kw,
        ).float()  # fmt: skip
        res = d["variants"] = {}
        l2 = "1" if base.get("l2") else "0"
        cands = {"base": _patched(base, {}), **{n: _patched(base, ATTEND[n]) for n in names}}
        best, seen = (math.inf, None, None), []
        for vname, entry in cands.items():
            if time.monotonic() > deadline:
                res[vname] = {"skipped": "time budget"}
                continue
            if entry in seen:
                continue  # the same entry as a variant already timed
            if entry.get("attend", {}).get("thr_in_cand") and sh["B"] * sh["Hkv"] * math.ceil(
                    sh["S"] / entry["selection_kw"].get("chunk", 1024)) > 2048:  # fmt: skip
                continue  # thresholds per candidate program: only for about one wave of them
            seen.append(entry)
            table["shapes"][key] = entry
            path.write_text(json.dumps(table, indent=1))
            _tuned.reload()
            p = res[vname] = {"entry": entry}
            try:
                y = sparq(s0)[:nb].float()
                err = (y - ref).abs().max().item() / max(1e-6, ref.abs().max().item())
                p["rel_err_vs_fp32_reference"] = err
                if not (math.isfinite(err) and err <= 3e-2):
                    p["error"] = "pipeline output differs from the reference"
                    continue
                for mname, env in (("serial", {"SPARQ_PDL": "0", "SPARQ_L2": l2}),
                                   ("pdl", {"SPARQ_PDL": "1", "SPARQ_L2": l2})):  # fmt: skip
                    if time.monotonic() > deadline:
                        break
                    t_m = _time_mode(sparq, sets, s0, nb, reps, dev, p, mname, env)
                    if t_m is not None and t_m < best[0]:
                        best = (t_m, vname, {**entry, "pdl": int(env["SPARQ_PDL"]),
                                             "l2": l2 == "1"})  # fmt: skip
            except Exception as e:  # a variant that fails is recorded, the others go on
                p["error"] = repr(e)[:300]
            if dev == "cuda":
                torch.cuda.empty_cache()
        if best[2] is None:
            table["shapes"][key] = base
        else:
            t_d = _time(_graphed([lambda s=s: dense_decode(s["q"], s["K"], s["V"], None,
                                                           DH**-0.5) for s in sets], dev),
                        reps, dev)  # fmt: skip
            entry = best[2]
            av = best[1]
            if best[1] == "base":
                av = base.get("attend_variant", "base")
            elif "attend" in base:  # a refinement of an entry that already attends
                av = f"{base.get('attend_variant', 'attend')}+{best[1]}"
            entry.update({"t_sparq_s": best[0], "t_dense_s": t_d, "dense_faster": t_d <= best[0],
                          "attend_variant": av})  # fmt: skip
            table["shapes"][key] = entry
        d["tune_seconds"] = time.monotonic() - t0
        path.write_text(json.dumps(table, indent=1))
        _tuned.reload()
        times = " ".join(f"{v}:" + "/".join(f"{x * 1e6:.1f}" for x in p.get("modes_s", {}).values())
                         + (" ERR " + p["error"][:80] if "error" in p else "")
                         for v, p in res.items())  # fmt: skip
        e = table["shapes"][key]
        print(f"{name:4s} {key}: {times} -> {e.get('attend_variant', 'base')} "
              f"pdl={e.get('pdl')} sparq={e.get('t_sparq_s', 0) * 1e6:.1f}us "
              f"dense={e.get('t_dense_s', 0) * 1e6:.1f}us ({time.monotonic() - t0:.0f}s)",
              flush=True)  # fmt: skip
        del sets


def main(argv):
    out = Path(argv[1])
    smoke = "--smoke" in argv
    fast = "--fast" in argv
    budget = float(argv[argv.index("--budget") + 1]) if "--budget" in argv else 200.0
    t_start = time.monotonic()
    deadline = t_start + budget
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sparq_tuned.json"
    os.environ["SPARQ_TUNED_JSON"] = str(path)  # the pipeline check reads the table being built
    from sparq.kernels import _tuned
    from sparq.kernels._tuned import shape_key

    dev = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    if smoke and torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        dev = "cuda"
    name_dev = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    table = {"device": name_dev, "date": _dt.date.today().isoformat(),
             "torch": torch.__version__, "shapes": {}, "detail": {}}  # fmt: skip
    try:
        import triton

        table["triton"] = triton.__version__
    except ImportError:
        pass
    reps = 2 if dev == "cpu" else 100
    if "--base" in argv:  # keep the entries of an earlier table (same GPU model) not re-tuned
        try:
            base = json.loads(Path(argv[argv.index("--base") + 1]).read_text())
        except (OSError, ValueError):
            base = {}
        if base.get("device") == name_dev:
            table["shapes"].update(base.get("shapes", {}))
            table["base"] = {"source": base.get("source"), "date": base.get("date")}
    path.write_text(json.dumps(table, indent=1))  # a valid table even if cut early
    shapes = SMOKE if smoke else SHAPES
    if "--only" in argv:  # e.g. --only K2,K3 to finish the shapes a cut run left out
        names = argv[argv.index("--only") + 1].split(",")
        shapes = {n: shapes[n] for n in names if n in shapes}
    if "--attend" in argv:  # the base entries against their fused selection + attention
        names = [n for n in argv[argv.index("--attend") + 1].split(",") if n in ATTEND]
        _attend_only(shapes, table, path, dev, reps, deadline, names)
        print(f"tuning done in {time.monotonic() - t_start:.0f}s -> {path}", flush=True)
        return
    if "--pdl-only" in argv:  # keep the base entries' kernels, measure PDL on/off and dense
        _pdl_only(shapes, table, path, dev, reps, deadline)
        print(f"tuning done in {time.monotonic() - t_start:.0f}s -> {path}", flush=True)
        return
    for name, sh in shapes.items():
        if time.monotonic() > deadline:
            table["detail"][name] = {"skipped": "time budget"}
            break
        t0 = time.monotonic()
        key = shape_key(sh["B"], sh["Hq"], sh["Hkv"], sh["S"], DH, sh["r"], min(sh["k"], sh["S"]))
        try:
            got = tune_shape(name, sh, dev, reps, deadline, table["detail"], smoke, fast)
            if got is None:
                table["detail"].setdefault(name, {})["error"] = "no correct variant"
            else:
                entry, sets, fns = got
                base_entry = table["shapes"].get(key)
                table["shapes"][key] = entry
                path.write_text(json.dumps(table, indent=1))
                _tuned.reload()
                pipeline(name, sh, dev, reps, entry, sets, fns, table["detail"])
                del sets
                d = table["detail"][name]
                bsel = (base_entry or {}).get("selection_variant")
                bres = d.get("select", {}).get(bsel, {"s": 0})  # not re-checked: assume fine
                slower = (
                    base_entry is not None
                    and "s" in bres  # the earlier entry's selection still passes its check
                    and entry.get("t_sparq_s", math.inf) > (base_entry.get("t_sparq_s") or math.inf)
                )
                if base_entry is not None and (
                    "budget_cut" in d or "error" in d["pipeline"] or slower
                ):
                    # a cut, failed or slower retune never replaces a complete earlier entry
                    table["shapes"][key] = base_entry
                    d["kept_base_entry"] = True
        except Exception as e:  # keep going: the other shapes still get tuned
            table["detail"].setdefault(name, {})["error"] = repr(e)[:300]
        table["detail"].setdefault(name, {})["tune_seconds"] = time.monotonic() - t0
        path.write_text(json.dumps(table, indent=1))
        _tuned.reload()
        e = table["shapes"].get(key, {})
        print(f"{name:4s} {key}: prep={e.get('prep')} sel={e.get('selection_variant')} "
              f"step1={e.get('step1')} "
              f"step2={e.get('step2')} sparq={e.get('t_sparq_s', 0) * 1e3:.3f}ms "
              f"dense={e.get('t_dense_s', 0) * 1e3:.3f}ms dense_faster={e.get('dense_faster')} "
              f"({time.monotonic() - t0:.0f}s)", flush=True)  # fmt: skip
        if dev == "cuda":
            torch.cuda.empty_cache()
    print(f"tuning done in {time.monotonic() - t_start:.0f}s -> {path}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
