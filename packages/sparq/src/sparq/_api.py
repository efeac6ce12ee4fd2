"""Public entry points: the decode-step dispatcher and the multi-query (prefill) variant."""

from __future__ import annotations

import math

import torch

from sparq._reference import SparQStats, masked_v_mean, sparq_attention_reference, sparq_core
from sparq._validate import check_decode_args, check_rk, valid_mask_from

__all__ = ["sparq_attention", "sparq_attention_prefill"]


def _try_kernel(q, K, V, *, r, k, local_window, sink_tokens, v_mean, K_t, seq_lens, scale, realloc):
    """Run the Triton kernel when it exists and supports these inputs; else return None."""
    try:
        from sparq import kernels
    except ImportError:  # CPU-only install without triton, or kernels not built
        return None
    supports = getattr(kernels, "supports", None)
    fn = getattr(kernels, "sparq_attention_triton", None)
    if supports is None or fn is None:
        return None
    if not supports(q, K, V, r=r, k=k, K_t=K_t, seq_lens=seq_lens, return_stats=False):
        return None
    return fn(
        q,
        K,
        V,
        r=r,
        k=k,
        local_window=local_window,
        sink_tokens=sink_tokens,
        v_mean=v_mean,
        K_t=K_t,
        seq_lens=seq_lens,
        scale=scale,
        reallocation=realloc,
    )


def sparq_attention(
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    *,
    r: int,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
    v_mean: torch.Tensor | None = None,
    K_t: torch.Tensor | None = None,
    seq_lens: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    scale: float | None = None,
    reallocation: bool | None = None,
    return_stats: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, SparQStats]:
    """One SparQ Attention decode step (Ribar et al. 2024, Algorithm 1), GQA-aware.

    Args:
        q: ``(B, Hq, 1, dh)`` query of the new token (fp32/bf16/fp16).
        K, V: ``(B, Hkv, S, dh)`` key/value cache, ``Hq % Hkv == 0``; query head ``h`` reads KV head
            ``h // (Hq // Hkv)``. Same dtype/device as ``q``.
        r: query components used for the approximate scores (step 1), ``1 <= r <= dh``.
        k: positions fetched in full (step 2), including the forced window and sinks.
        local_window: the last ``local_window`` valid positions are always selected.
        sink_tokens: the first ``sink_tokens`` valid positions are always selected.
        v_mean: fp32 ``(B, Hkv, dh)`` running mean of the valid V rows (``SparQCache.v_mean``);
            computed from V when reallocation is on and it is None.
        K_t: optional ``(B, Hkv, dh, S)`` contiguous copy of K (the fast step-1 layout).
        seq_lens: int64 ``(B,)`` live lengths (right padding in a static cache).
        attention_mask: optional bool ``(B, S)`` valid positions (e.g. left padding); always
            runs the reference.
        scale: logit scale, default ``1/sqrt(dh)``.
        reallocation: blend with the mean value (step 3); None = on for MHA, off for GQA (the
            paper's finding).
        return_stats: also return :class:`SparQStats` (α, indices, components, coverage).

    Returns:
        ``(B, Hq, 1, dh)`` in ``q.dtype`` (and the stats when requested). On CUDA the Triton kernel
        from ``sparq.kernels`` is used when it supports the inputs; otherwise the fp32 reference.
    """
    check_decode_args(q, K, V, K_t)
    B, Hq, _, dh = q.shape
    Hkv = K.shape[1]
    check_rk(r, k, dh, local_window, sink_tokens)
    realloc = (Hq == Hkv) if reallocation is None else bool(reallocation)
    if realloc and v_mean is not None and tuple(v_mean.shape) != (B, Hkv, dh):
        raise ValueError(
            f"v_mean must have shape (B, Hkv, dh) = {(B, Hkv, dh)}, got {tuple(v_mean.shape)}"
        )
    if q.is_cuda and not return_stats and attention_mask is None:
        vm = v_mean
        if realloc and vm is None:
            valid = valid_mask_from(B, K.shape[2], q.device, seq_lens, None)[:, None]
            vm = masked_v_mean(V, valid)[:, :, 0]
        sc = float(scale) if scale is not None else 1.0 / math.sqrt(dh)
        out = _try_kernel(
            q, K, V, r=r, k=k, local_window=local_window, sink_tokens=sink_tokens, v_mean=vm,
            K_t=K_t, seq_lens=seq_lens, scale=sc, realloc=realloc,
        )  # fmt: skip
        if out is not None:
            return out
    return sparq_attention_reference(
        q,
        K,
        V,
        r=r,
        k=k,
        local_window=local_window,
        sink_tokens=sink_tokens,
        v_mean=v_mean,
        K_t=K_t,
        seq_lens=seq_lens,
        attention_mask=attention_mask,
        scale=scale,
        reallocation=realloc,
        return_stats=return_stats,
    )


def sparq_attention_prefill(
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    *,
    r: int,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
    attention_mask: torch.Tensor | None = None,
    scale: float | None = None,
    reallocation: bool | None = None,
    chunk: int = 256,
    return_stats: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, SparQStats]:
    """Multi-query SparQ: every query row runs SparQ over its own causal prefix, in one pass.

    Mathematically identical to decoding the ``T`` tokens one at a time (each with the reference
    decode step over the keys it could see), but evaluated in parallel — used for fast offline
    evaluation (paper §5 protocol: SparQ on every generated position).

    Args:
        q: ``(B, Hq, T, dh)``: queries of the LAST ``T`` of the ``S`` key positions; row ``t`` sees
            keys ``0 .. S - T + t``.
        K, V: ``(B, Hkv, S, dh)``.
        attention_mask: optional bool ``(B, S)`` valid keys (left padding).
        chunk: query rows processed at once (bounds memory at ``B·Hq·chunk·S`` fp32).
        Other args as :func:`sparq_attention`; ``v_mean`` is the causal mean of each row's prefix.

    Returns:
        ``(B, Hq, T, dh)`` in ``q.dtype`` (and stats with a ``T`` axis when requested).
    """
    check_decode_args(q, K, V, None, multi_query=True)
    B, Hq, T, dh = q.shape
    Hkv, S = K.shape[1], K.shape[2]
    check_rk(r, k, dh, local_window, sink_tokens)
    if T > S:
        raise ValueError(f"q has T={T} rows but K holds only S={S} positions; need T <= S")
    realloc = (Hq == Hkv) if reallocation is None else bool(reallocation)
    base = valid_mask_from(B, S, q.device, None, attention_mask)
    pos = torch.arange(S, device=q.device)
    sc = float(scale) if scale is not None else 1.0 / math.sqrt(dh)
    outs, all_stats = [], []
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        qpos = torch.arange(S - T + t0, S - T + t1, device=q.device)
        valid = base[:, None, :] & (pos[None, None, :] <= qpos[None, :, None])  # (B, t, S)
        if bool((valid.sum(-1) == 0).any()):
            valid = valid | (pos[None, None, :] == qpos[None, :, None])  # padded rows: self only
        vm = masked_v_mean(V, valid) if realloc else None
        y, st = sparq_core(
            q[:, :, t0:t1], K, V, valid, r=r, k=k, local_window=local_window,
            sink_tokens=sink_tokens, scale=sc, reallocation=realloc, v_mean=vm,
        )  # fmt: skip
        outs.append(y)
        all_stats.append(st)
    y = torch.cat(outs, dim=2)
    if not return_stats:
        return y
    return y, SparQStats(
        alpha=torch.cat([s.alpha for s in all_stats], dim=2),
        indices=torch.cat([s.indices for s in all_stats], dim=2),
        components=torch.cat([s.components for s in all_stats], dim=2),
        coverage=torch.cat([s.coverage for s in all_stats], dim=2),
    )
