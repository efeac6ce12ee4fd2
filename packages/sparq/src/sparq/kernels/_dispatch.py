"""The SparQ decode entry point on CUDA: query preparation, the three kernels, dense fallback."""

from __future__ import annotations

import functools
import math
import os

import torch
import torch.nn.functional as F

from ._common import capture_graph, fastest, pdl_launches
from ._fused_mha import fused_mha_supported, select_fused_mha
from ._hist_attend import hist_attention
from ._prep import prepare_query_fused
from ._select import select_topk, select_topk_torch
from ._select_hist import hist_supported, select_topk_hist
from ._select_sample import sample_plan, sampled_supported, select_topk_sampled
from ._stagger import staggered
from ._step1 import approx_logits
from ._step2 import sparse_attention
from ._tuned import shape_key, tuned_entry

__all__ = [
    "dense_decode",
    "dense_decode_is_faster",
    "fallback_verdict",
    "prepare_query",
    "sparq_attention_triton",
    "staggered",
    "supports",
]

# Calibration of the fallback rule (H200, bf16; see benchmarks/README.md). Effective bandwidths
# are what the kernels reach on long inputs (dense SDPA reads at ~4.6 TB/s on the K1 shape); the
# fixed costs are the launch chains (dense: one SDPA call, SparQ: query preparation plus five or
# six kernels).
_DENSE_BW = 4.4e12
_SPARQ_BW = 2.8e12
_DENSE_FIXED_S = 10e-6
_SPARQ_FIXED_S = 45e-6
# Latency terms of the selection. Sampled selection: its final kernel (one program per
# (batch, KV head) row, ~4 resident per SM) searches the candidate slots in registers, ~5 us plus
# ~2 ns per slot per wave of rows. Single-program radix selection (rows too long for the sampled
# candidate block): ~1.2 ns per position per wave of one row per SM.
_FINAL_S = 5e-6
_FINAL_S_PER_SLOT = 2e-9
_SELECT_S_PER_POS = 1.2e-9
_NUM_SMS = 132
# Histogram selection (every pass over a row split across many programs): five short kernels,
# ~3 us each when graphed, plus the scratch traffic already in the byte count.
_HIST_S = 15e-6


def dense_decode_is_faster(B: int, Hq: int, Hkv: int, S: int, dh: int, r: int, k: int) -> bool:
    """Whether plain dense decode attention is expected to beat the SparQ kernels.

    A bandwidth model (paper section 3 transfer counts, plus the fp32 scratch the selection reads)
    with fixed per-call costs: SparQ moves ``S*r + 2*k*dh`` cache elements per KV head plus
    ``8*G*S`` scratch bytes, dense moves ``2*S*dh`` elements; the top-k selection adds a latency
    term (see the constants above; the histogram selection, which splits every pass over a row
    across many programs, has a fixed cost independent of the number of rows). With the H200
    constants the SparQ kernels are chosen for the K1/K2/K3 and end-to-end shapes of the
    benchmarks and dense attention for short sequences (B=1, S=4k). All sizes are Python ints.

    When the committed tuning table (``tuned.json``, written by ``benchmarks/tune_sparq.py`` on
    the GPU) holds this exact shape for the current CUDA device, its measured verdict (dense time
    <= best SparQ time) replaces the model.
    """
    tuned = _tuned_verdict(B, Hq, Hkv, S, dh, r, k)
    if tuned is not None:
        return tuned
    G = max(1, Hq // max(1, Hkv))
    esize = 2
    rows = B * Hkv
    dense_bytes = rows * 2 * S * dh * esize
    sparq_bytes = rows * ((S * r + 2 * min(k, S) * dh) * esize + 8 * G * S)
    t_dense = dense_bytes / _DENSE_BW + _DENSE_FIXED_S
    if hist_supported(S, min(k, S)):
        t_select = _HIST_S
    elif sampled_supported(S, min(k, S)):
        slots = sample_plan(S, min(k, S))["slots"]
        t_select = -(-rows // (4 * _NUM_SMS)) * (_FINAL_S + slots * _FINAL_S_PER_SLOT)
    else:
        t_select = -(-rows // _NUM_SMS) * S * _SELECT_S_PER_POS
    t_sparq = sparq_bytes / _SPARQ_BW + _SPARQ_FIXED_S + t_select
    return t_dense <= t_sparq


_VERDICT: dict[tuple, bool] = {}


def fallback_verdict(key: tuple, *, model, tuned: bool | None = None, measure=None) -> bool:
    """Whether the call identified by ``key`` should run dense attention instead of SparQ.

    ``key`` names a size class (:func:`sparq_attention_triton` groups lengths by powers of two
    and ``S / k`` by half octaves): the first call of a class measures, the others reuse its
    verdict.

    In order: ``tuned`` (the committed table's measured verdict for this shape, ``None`` when
    it has none); a verdict measured earlier in this process for ``key``; ``measure()`` (a
    zero-argument callable returning the measured verdict, or ``None`` when it cannot
    measure now, e.g. on the CPU or inside a CUDA-graph capture), remembered for
    ``key``; else ``model()`` (not remembered, so that a later eager call can still measure).
    ``SPARQ_FALLBACK=model`` skips the measurement (the model decides every untuned shape).
    """
    if tuned is not None:
        return tuned
    if key in _VERDICT:
        return _VERDICT[key]
    if measure and os.environ.get("SPARQ_FALLBACK", "") != "model":
        try:
            verdict = measure()
        except Exception:  # a failed measurement leaves the decision to the model
            verdict = None
        if verdict is not None:
            _VERDICT[key] = bool(verdict)
            return bool(verdict)
    return bool(model())


def _tuned_verdict(B, Hq, Hkv, S, dh, r, k) -> bool | None:
    entry = tuned_entry(shape_key(B, Hq, Hkv, S, dh, r, k))
    return bool(entry["dense_faster"]) if entry and "dense_faster" in entry else None


def _graph_seconds(fn, reps: int, flush: torch.Tensor) -> float:
    """Device seconds per replay of a CUDA graph of one ``fn()`` call (:func:`capture_graph`),
    each replay timed alone after ``flush`` (a buffer
    twice the L2 size) is overwritten, so that no replay reads the previous one's data from L2
    (a decode step's cache is seldom L2-resident; without the flush the few megabytes SparQ
    touches would stay cached between replays while dense attention streams everything). The
    graph is freed afterwards."""
    g = capture_graph(fn)
    g.replay()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(reps)]  # fmt: skip
    for start, end in events:
        flush.zero_()
        start.record()
        g.replay()
        end.record()
    torch.cuda.synchronize()
    del g
    return sum(a.elapsed_time(b) for a, b in events) / 1e3 / reps


def _graph_verdict(sparq_call, dense_call, reps: int = 10, rounds: int = 3) -> bool:
    """True when dense attention is at least as fast as SparQ for this call, both timed as
    CUDA-graph replays (decode steps are normally graphed) from a cold L2, in alternating
    rounds, best round each. The first SparQ call also compiles its kernels and picks the
    selection."""
    sparq_call()
    dense_call()
    dev = torch.cuda.current_device()
    l2 = getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", 0) or 64 << 20
    flush = torch.empty(2 * l2, device="cuda", dtype=torch.uint8)
    t_sparq = t_dense = math.inf
    for _ in range(rounds):
        t_sparq = min(t_sparq, _graph_seconds(sparq_call, reps, flush))
        t_dense = min(t_dense, _graph_seconds(dense_call, reps, flush))
    return t_dense <= t_sparq


def supports(q, K, V, *, r, k, K_t, seq_lens, return_stats) -> bool:
    """Whether :func:`sparq_attention_triton` can serve this call (CUDA, bf16/fp16, contiguous)."""
    try:
        if return_stats or K_t is None:
            return False
        if not (q.is_cuda and K.is_cuda and V.is_cuda and K_t.is_cuda):
            return False
        if q.dtype not in (torch.bfloat16, torch.float16):
            return False
        if not (K.dtype == V.dtype == K_t.dtype == q.dtype):
            return False
        if q.dim() != 4 or q.shape[2] != 1 or K.dim() != 4:
            return False
        B, Hq, _, dh = q.shape
        _, Hkv, S, _ = K.shape
        if Hq % Hkv or dh > 256 or not 1 <= r <= dh or k < 1:
            return False
        if tuple(K_t.shape) != (B, Hkv, dh, S) or tuple(V.shape) != tuple(K.shape):
            return False
        if not (K.is_contiguous() and V.is_contiguous() and K_t.is_contiguous()):
            return False
        return seq_lens is None or (seq_lens.is_cuda and tuple(seq_lens.shape) == (B,))
    except (AttributeError, TypeError):
        return False


def prepare_query(
    q: torch.Tensor, Hkv: int, r: int, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the r components per KV group and build the temperature-scaled query (step 1).

    ``i1 = top_r(sum_{h in group} |q_h|)``; per head ``scale_hat = scale / sqrt(c_h)`` with the L1
    coverage ``c_h = ||q_h[i1]||_1 / ||q_h||_1`` (1 for a zero query); for ``scale = 1/sqrt(dh)``
    this is the paper's ``1/tau``, ``tau = sqrt(dh * c_h)``. Returns ``i1`` ``(B, Hkv, r)`` int64
    and ``q_hat`` ``(B, Hkv, G, r)`` fp32.
    """
    B, Hq, _, dh = q.shape
    G = Hq // Hkv
    qf = q.float().reshape(B, Hkv, G, dh)
    aq = qf.abs()
    # stable sort: ties between components go to the lower index, as in the reference
    i1 = torch.sort(aq.sum(2), dim=-1, descending=True, stable=True).indices[..., :r]
    qsel = qf.gather(-1, i1[:, :, None, :].expand(B, Hkv, G, r))
    total = aq.sum(-1)
    cov = torch.where(total > 0, qsel.abs().sum(-1) / total.clamp_min(1e-30), 1.0)
    scale_hat = scale * torch.rsqrt(cov.clamp_min(1e-30))
    return i1, qsel * scale_hat[..., None]


def dense_decode(q, K, V, seq_lens, scale) -> torch.Tensor:
    """Dense decode attention over the valid positions (GQA without copying K/V), ``q.dtype``."""
    Hq, Hkv, S = q.shape[1], K.shape[1], K.shape[2]
    mask = None
    if seq_lens is not None:
        pos = torch.arange(S, device=q.device)
        mask = (pos[None, :] < seq_lens[:, None])[:, None, None, :]
    return F.scaled_dot_product_attention(
        q, K, V, attn_mask=mask, scale=scale, enable_gqa=Hq != Hkv
    )


def sparq_attention_triton(
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    *,
    r: int,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
    v_mean: torch.Tensor | None = None,
    K_t: torch.Tensor,
    seq_lens: torch.Tensor | None = None,
    scale: float | None = None,
    reallocation: bool = False,
    dense_fallback: bool = True,
    selection: str = "auto",
    streams: int | None = None,
) -> torch.Tensor:
    """SparQ decode attention on CUDA (paper Alg. 1 with GQA), CUDA-graph capturable.

    Args:
        q: ``(B, Hq, 1, dh)`` bf16/fp16 query.
        K, V: ``(B, Hkv, S, dh)`` caches (S = allocated length), contiguous, ``q.dtype``.
        r: query components used for the approximate scores (``1 <= r <= dh``).
        k: positions attended exactly (clipped to S); the window and sinks count towards k.
        local_window, sink_tokens: always-selected last/first positions.
        v_mean: ``(B, Hkv, dh)`` fp32 running mean of the valid V rows (needed for reallocation).
        K_t: ``(B, Hkv, dh, S)`` S-contiguous copy of K.
        seq_lens: ``(B,)`` int64 live lengths (``None``: all S valid).
        scale: exact-softmax scale (default ``dh ** -0.5``).
        reallocation: blend with ``v_mean`` by the captured mass alpha (paper step 3).
        dense_fallback: use dense attention where it is faster (:func:`fallback_verdict`: the
            tuned table's verdict, else on CUDA both are timed once per size class as
            CUDA-graph replays on its first eager call, else the bandwidth model
            :func:`dense_decode_is_faster`).
        selection: ``"triton"`` (the single-program radix selection), ``"sampled"`` (sampled
            threshold + parallel candidate filter, :func:`select_topk_sampled`), ``"hist"``
            (sampled threshold + bucket histogram, every pass over a row on many programs,
            :func:`select_topk_hist`; suits few long rows), ``"torch"``
            (``torch.topk``), ``"fused"`` (one head per KV head only: step 1 fused with the
            candidate filter, :func:`select_fused_mha`; other shapes fall back to ``"auto"``)
            or ``"auto"``: the tuning table's choice for this shape when it
            has one, else on the GPU all applicable variants are timed once per shape on the
            first eager call and the fastest is kept (inside a CUDA-graph capture an untimed
            shape uses the histogram selection for fewer than ``4 * 132`` rows, else the
            sampled one when it applies, else the Triton one).

        streams: run the call as this many staggered parts (:func:`staggered`: rows split by
            batch, or by KV head when ``B == 1``; part ``i`` starts once part ``i - 1`` has
            finished step 1, on its own CUDA stream), so that the short latency-bound kernels of
            one part overlap the bandwidth-bound kernels of the next. ``None``: the environment
            variable ``SPARQ_STREAMS``, else the tuned entry's ``"streams"``, else 1. Same result
            bit for bit (every row runs the same kernels). The parts run on streams of
            decreasing priority when ``SPARQ_STREAMS_PRIO=1`` or the entry's
            ``"streams_prio"`` says so.

    A tuned entry with ``"attend": {...}`` (histogram selection, no reallocation) runs
    :func:`~sparq.kernels._hist_attend.hist_attention` instead of the selection's count and emit
    kernels and step 2: each candidate chunk attends its own winners (same positions).

    Returns:
        ``(B, Hq, 1, dh)`` in ``q.dtype``.
    """
    B, Hq, _, dh = q.shape
    Hkv, S = K.shape[1], K.shape[2]
    if Hq % Hkv:
        raise ValueError(f"Hq={Hq} must be a multiple of Hkv={Hkv}")
    if not 1 <= r <= dh:
        raise ValueError(f"r must be in [1, dh={dh}], got {r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if reallocation and v_mean is None:
        raise ValueError("reallocation=True needs v_mean (B, Hkv, dh) fp32; pass the cache's mean")
    scale = float(scale) if scale is not None else 1.0 / math.sqrt(dh)
    k = min(k, S)
    if dense_fallback:
        # one measurement per size class (S by powers of two, k/S by half octaves), so that a
        # generation whose cache grows token by token measures a few times, not every step
        key = (B, Hq, Hkv, dh, r, S.bit_length(), round(2 * math.log2(S / k)),
               bool(reallocation), str(q.dtype), str(q.device), selection, streams)  # fmt: skip

        def measure():  # only for a class without a verdict yet, outside any capture
            if not (q.is_cuda and not torch.cuda.is_current_stream_capturing()):
                return None
            call = functools.partial(
                sparq_attention_triton, q, K, V, r=r, k=k, local_window=local_window,
                sink_tokens=sink_tokens, v_mean=v_mean, K_t=K_t, seq_lens=seq_lens, scale=scale,
                reallocation=reallocation, dense_fallback=False, selection=selection,
                streams=streams,
            )  # fmt: skip
            return _graph_verdict(call, lambda: dense_decode(q, K, V, seq_lens, scale))

        if fallback_verdict(
            key,
            model=lambda: dense_decode_is_faster(B, Hq, Hkv, S, dh, r, k),
            tuned=_tuned_verdict(B, Hq, Hkv, S, dh, r, k),
            measure=measure,
        ):
            return dense_decode(q, K, V, seq_lens, scale)
    if seq_lens is None:
        seq_lens = _full_lens(B, S, q.device)
    elif seq_lens.dtype != torch.int64:
        seq_lens = seq_lens.to(torch.int64)
    if selection not in _SELECTORS and selection not in ("auto", "fused"):
        raise ValueError(
            "selection must be 'auto', 'triton', 'sampled', 'hist', 'fused' or 'torch', got "
            f"{selection!r}"
        )
    entry = tuned_entry(shape_key(B, Hq, Hkv, S, dh, r, k)) or {}
    run = functools.partial(
        _pipeline, r=r, k=k, local_window=local_window, sink_tokens=sink_tokens, scale=scale,
        reallocation=reallocation, selection=selection, entry=entry,
    )  # fmt: skip
    n = _num_streams(streams, entry, B, Hkv)
    with pdl_launches(_use_pdl(entry, q), _use_flag("SPARQ_L2", entry, "l2") and q.is_cuda):
        if n > 1:
            prio = _use_flag("SPARQ_STREAMS_PRIO", entry, "streams_prio")
            return staggered(run, n, q, K, V, K_t, v_mean, seq_lens, priority=prio)
        return run(q, K, V, K_t, v_mean, seq_lens)


def _pipeline(
    q, K, V, K_t, v_mean, seq_lens, *, r, k, local_window, sink_tokens, scale, reallocation,
    selection, entry, out=None, after_step1=None,
):  # fmt: skip
    """The SparQ kernels of one call (shapes already checked, ``k <= S``, ``seq_lens`` int64),
    launched with the choices of the tuned ``entry`` (that of the whole call's shape, also
    when this is one part of a staggered call). ``out``: ``(B, Hq, 1, dh)`` tensor that
    receives the result (else a new one); ``after_step1()`` is called once, right after the
    step-1 launch (:func:`staggered` records the event the next part waits for there)."""
    B, Hq = q.shape[0], q.shape[1]
    Hkv, S = K.shape[1], K.shape[2]
    hook = after_step1 or (lambda: None)
    if k == S:
        # every position is selected whatever the scores: exact attention over all of them, and
        # alpha = 1 makes the reallocation blend the identity
        hook()
        idx = _cached(("all", B, Hkv, S, str(q.device)), lambda: torch.arange(
            S, device=q.device, dtype=torch.int32).expand(B, Hkv, S).contiguous())  # fmt: skip
        return sparse_attention(q, K, V, idx, seq_lens, scale, out=out, **entry.get("step2", {}))
    # untuned shapes: the sorting preparation, one warp (fastest on every tuned H200 shape at
    # 00:55 UTC: K1 8.0 vs 17.4 us, K2 3.9 vs 6.5, E2E 4.0 vs 5.2, K3 4.4 vs 5.9)
    prep = _PREP.get(entry.get("prep", "fused_sort_w1"), prepare_query_fused)
    # "in_step1": the row-loop step 1 prepares the query itself (one launch fewer)
    in_step1 = entry.get("prep") == "in_step1"
    i1, q_hat = (None, None) if in_step1 else prep(q, Hkv, r, scale)
    if selection == "auto":
        selection = entry.get("selection", "auto")
    sel_kw = entry.get("selection_kw", {}) if selection == entry.get("selection") else {}
    forced = max(0, local_window) + max(0, sink_tokens)
    kw1 = entry.get("step1") or _default_step1(Hq // Hkv)
    if in_step1 and (selection == "fused" or not kw1.get("rows")):
        i1, q_hat = prepare_query_fused(q, Hkv, r, scale, sort=True, num_warps=1)
    realloc = reallocation and v_mean is not None
    if selection == "fused" and fused_mha_supported(Hq // Hkv, S, k, sel_kw.get("tile"), forced):
        idx, alpha = select_fused_mha(K_t, i1, q_hat, seq_lens, k, local_window, sink_tokens,
                                      **sel_kw)  # fmt: skip
        hook()
    else:
        pq = (q, r, scale) if i1 is None else None
        logits, tmax, tsum = approx_logits(K_t, i1, q_hat, seq_lens, prep_q=pq, **kw1)
        hook()
        if selection in ("auto", "fused"):
            selection = _pick_selection(logits, tmax, tsum, seq_lens, k, local_window, sink_tokens)
            sel_kw = dict(_UNTUNED_KW.get(selection, {}))
        if selection == "sampled" and not sampled_supported(S, k, sel_kw.get("chunk")):
            selection, sel_kw = "triton", {}
        if selection == "hist" and not hist_supported(S, k):
            selection, sel_kw = "triton", {}
        attend = entry.get("attend")
        if selection == "hist" and isinstance(attend, dict) and not realloc:
            # the chunks of the selection attend their own winners (no index list)
            y = hist_attention(q, K, V, logits, tmax, tsum, seq_lens, k, local_window,
                               sink_tokens, scale, **attend, **sel_kw)  # fmt: skip
            return y if out is None else out.copy_(y)
        if selection in ("hist", "sampled"):  # alpha only where the blend needs it
            sel_kw = {**sel_kw, "need_alpha": bool(realloc)}
        idx, alpha = _SELECTORS[selection](
            logits, tmax, tsum, seq_lens, k, local_window, sink_tokens, **sel_kw
        )
    return sparse_attention(
        q,
        K,
        V,
        idx,
        seq_lens,
        scale,
        alpha=alpha.reshape(B, Hq) if realloc else None,
        v_mean=v_mean.float() if realloc else None,
        out=out,
        **entry.get("step2", {}),
    )


def _num_streams(streams: int | None, entry: dict, B: int, Hkv: int) -> int:
    """Parts of a staggered call: ``streams``, else ``SPARQ_STREAMS``, else the entry's
    ``"streams"``, at most the number of rows it can split (batch, or KV heads when B is 1)."""
    if streams is None:
        env = os.environ.get("SPARQ_STREAMS", "")
        streams = int(env) if env.isdigit() else int(entry.get("streams", 1) or 1)
    if streams < 1:
        raise ValueError(f"streams must be >= 1, got {streams}")
    return max(1, min(streams, B if B > 1 else Hkv))


def _use_flag(env_name: str, entry: dict, key: str) -> bool:
    """A launch option: the environment variable forces it on (``1``) or off (``0``), else the
    tuned entry's measured verdict (off when absent)."""
    env = os.environ.get(env_name, "")
    return env == "1" if env in ("0", "1") else bool(entry.get(key, False))


def _use_pdl(entry: dict, q: torch.Tensor) -> int:
    """This call's programmatic dependent launch mode: 0 off, 1 the next kernel may launch once
    every program of the current one has started, 2 once every program has done its work
    (``SPARQ_PDL=0|1|2``, else the entry's ``"pdl"``: ``true``/1 or 2). Needs a CUDA device of
    compute capability 9.0 or newer."""
    env = os.environ.get("SPARQ_PDL", "")
    mode = int(env) if env in ("0", "1", "2") else int(entry.get("pdl", 0) or 0)
    if not (mode and q.is_cuda and torch.cuda.get_device_capability(q.device)[0] >= 9):
        return 0
    return mode


def _default_step1(G: int) -> dict:
    """Step-1 launch for shapes without a tuned entry: the row-loop kernel, which beat the
    tensor-core one on every tuned H200 shape (21:56 UTC run: K1 296 vs 419 us with 512-position
    tiles for one head per group; 1024-position tiles for groups of 4)."""
    return {"rows": True, "tile": 512 if G == 1 else 1024}


_CONST: dict[tuple, torch.Tensor] = {}


def _cached(key: tuple, make) -> torch.Tensor:
    """A constant tensor built by ``make()``, cached by ``key`` so that a graphed call does not
    replay the kernels that fill it; never cached when built inside a CUDA-graph capture."""
    t = _CONST.get(key)
    if t is None:
        t = make()
        if not (t.is_cuda and torch.cuda.is_current_stream_capturing()):
            _CONST[key] = t
    return t


def _full_lens(B: int, S: int, device: torch.device) -> torch.Tensor:
    """``(B,)`` int64 tensor of ``S`` (all positions valid), cached per shape and device."""
    return _cached(
        ("lens", B, S, str(device)),
        lambda: torch.full((B,), S, device=device, dtype=torch.int64),
    )


# launch options of a selection chosen without a tuned entry: the one-layout ("lean") kernels
# were faster on every tuned H200 shape (22:29 and 00:29 UTC runs: sampled 297 vs 358 us on K1,
# histogram 128 vs 136 us on K2, 77 vs 80 us on the end-to-end layer)
_UNTUNED_KW = {"sampled": {"lean": True, "fallback_block": 128}, "hist": {"lean": True}}
# query preparation variants by tuning-table name (one Triton kernel unless "torch")
_PREP = {
    "torch": prepare_query,
    "fused": prepare_query_fused,
    "fused_w2": functools.partial(prepare_query_fused, num_warps=2),
    "fused_sort": functools.partial(prepare_query_fused, sort=True),
    "fused_sort_w1": functools.partial(prepare_query_fused, sort=True, num_warps=1),
    "fused_sort_w2": functools.partial(prepare_query_fused, sort=True, num_warps=2),
}
_SELECTORS = {
    "triton": select_topk,
    "sampled": select_topk_sampled,
    "hist": select_topk_hist,
    "torch": select_topk_torch,
}
_SELECTION: dict[tuple, str] = {}


def _pick_selection(logits, tmax, tsum, seq_lens, k, window, sinks) -> str:
    """The faster selection for this shape, timed once with CUDA events (Triton on the CPU)."""
    S = logits.shape[-1]
    rows = logits.shape[0] * logits.shape[1]
    default = "sampled" if sampled_supported(S, k) else "triton"
    if hist_supported(S, k) and (rows < 4 * _NUM_SMS or default == "triton"):
        default = "hist"
    if not logits.is_cuda:
        return default
    key = (*logits.shape, k, logits.device.index)
    if key in _SELECTION:
        return _SELECTION[key]
    if torch.cuda.is_current_stream_capturing():
        return default
    args = (logits, tmax, tsum, seq_lens, k, window, sinks)
    names = ["triton", "torch"] + ["sampled"] * sampled_supported(S, k)
    names += ["hist"] * hist_supported(S, k)
    _SELECTION[key] = fastest(
        {n: (lambda f=_SELECTORS[n]: f(*args)) for n in names},
        warmup=2,  # also covers the Triton path's own launch tuning
        reps=5,
    )
    return _SELECTION[key]
