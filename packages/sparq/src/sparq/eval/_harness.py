"""Accuracy harness: every method × compression on the trained models, plus fidelity and q stats."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from sparq._api import sparq_attention_prefill
from sparq.baselines import METHODS, budget, multi_query_attention
from sparq.eval._model import TinyLlama, dense_causal_attention
from sparq.eval._tasks import RecallTask

__all__ = ["evaluate_lm", "evaluate_recall", "fidelity_and_q_stats", "make_attention"]

DEFAULT_COMPRESSIONS = (2, 4, 8, 16)


def make_attention(method: str, compression: float, t0: int) -> Callable:
    """Attention function for :class:`TinyLlama`: dense for rows ``< t0`` (prefill), ``method``
    for rows ``>= t0`` (decode steps, each over its own causal prefix)."""

    def attn(q, k, v, layer):
        y = dense_causal_attention(q, k, v, layer)
        if method == "dense":
            return y
        yq, _ = multi_query_attention(
            method, q[:, :, t0:], k, v, compression=compression, prefill_q=q[:, :, :t0]
        )
        return torch.cat([y[:, :, :t0], yq.to(y.dtype)], dim=2)

    return attn


def _runs(methods: Sequence[str], compressions: Sequence[float]):
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; expected some of {METHODS}")
    yield "dense", 1
    for c in compressions:
        for m in methods:
            if m != "dense":
                yield m, c


def evaluate_recall(
    model: TinyLlama,
    task: RecallTask,
    *,
    methods: Sequence[str] = METHODS,
    compressions: Sequence[float] = DEFAULT_COMPRESSIONS,
    n_samples: int = 256,
    batch: int = 128,
    seed: int = 2024,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Recall accuracy (fraction of answers correct) for each method and compression.

    The prompt (pairs, filler) is processed densely; every query/answer position is a decode step
    run by the method over its causal prefix. Budgets come from the live length at the first query.
    """
    gen = torch.Generator().manual_seed(seed)
    data = [task.sample(min(batch, n_samples - i), gen) for i in range(0, n_samples, batch)]
    t0 = task.prompt_len
    dev = next(model.parameters()).device
    rows = []
    for method, c in _runs(methods, compressions):
        attn = make_attention(method, c, t0)
        hit = tot = 0
        with torch.no_grad():
            for ids, mask in data:
                ids, mask = ids.to(dev), mask.to(dev)
                pred = model(ids[:, :-1], attn=attn).argmax(-1)
                m = mask[:, 1:]
                hit += int((pred[m] == ids[:, 1:][m]).sum())
                tot += int(m.sum())
        dh = model.config.head_dim
        knobs = budget(method, t0 + 1, dh, c)
        rows.append({"task": "recall", "method": method, "compression": c,
                     "accuracy": hit / tot, "n": tot, **knobs})  # fmt: skip
        if progress:
            progress(f"recall {method:>13s} 1/{c:<3g} acc {hit / tot:.4f}")
    return rows


def evaluate_lm(
    model: TinyLlama,
    windows: torch.Tensor,
    *,
    t0: int,
    methods: Sequence[str] = METHODS,
    compressions: Sequence[float] = DEFAULT_COMPRESSIONS,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Bits per byte of the positions ``>= t0`` of held-out byte windows ``(N, L)`` per method."""
    rows = []
    for method, c in _runs(methods, compressions):
        attn = make_attention(method, c, t0)
        nll = 0.0
        n = 0
        with torch.no_grad():
            for i in range(0, windows.shape[0], 32):
                w = windows[i : i + 32].to(next(model.parameters()).device)
                lo = model(w[:, :-1], attn=attn)[:, t0:]
                tgt = w[:, t0 + 1 :]
                nll += float(torch.nn.functional.cross_entropy(
                    lo.reshape(-1, lo.shape[-1]), tgt.reshape(-1), reduction="sum"))  # fmt: skip
                n += tgt.numel()
        knobs = budget(method, t0 + 1, model.config.head_dim, c)
        bpb = nll / n / math.log(2)
        rows.append({"task": "byte_lm", "method": method, "compression": c, "bpb": bpb, "n": n,
                     **knobs})  # fmt: skip
        if progress:
            progress(f"byte-lm {method:>13s} 1/{c:<3g} bpb {bpb:.4f}")
    return rows


def _kurtosis(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(-1, keepdim=True)
    return (x**4).mean(-1) / (x**2).mean(-1).clamp_min(1e-12) ** 2


def fidelity_and_q_stats(
    model: TinyLlama,
    ids: torch.Tensor,
    *,
    t0: int,
    compressions: Sequence[float] = DEFAULT_COMPRESSIONS,
) -> tuple[list[dict], list[dict]]:
    """Per layer: SparQ output cosine vs dense and α error (vs the true mass of the selected
    positions) on the dense model's own activations; and q's kurtosis / top-r L1 coverage."""
    captured: dict[int, tuple] = {}

    def grab(q, k, v, layer):
        captured[layer] = (q, k, v)
        return dense_causal_attention(q, k, v, layer)

    with torch.no_grad():
        model(ids.to(next(model.parameters()).device), attn=grab)
    fid, qst = [], []
    dh = model.config.head_dim
    for layer, (q, k, v) in sorted(captured.items()):
        B, Hq, T, _ = q.shape
        Hkv = k.shape[1]
        g = Hq // Hkv
        qd = q[:, :, t0:]
        y_dense = dense_causal_attention(q, k, v, layer)[:, :, t0:]
        absq = q.abs()
        r8 = max(1, dh // 8)
        cov = absq.topk(r8, dim=-1).values.sum(-1) / absq.sum(-1).clamp_min(1e-12)
        qst.append({"layer": layer, "kurtosis_mean": float(_kurtosis(q).mean()),
                    "coverage_top_dh_over_8": float(cov.mean()), "r": r8})  # fmt: skip
        for c in compressions:
            kn = budget("sparq", t0 + 1, dh, c)
            if "r" not in kn:  # no compression: SparQ with r = dh, k = S (exact)
                kn = {"r": dh, "k": T, "local_window": 0}
            y, st = sparq_attention_prefill(
                qd, k, v, r=kn["r"], k=kn["k"], local_window=kn["local_window"], return_stats=True
            )
            cos = torch.nn.functional.cosine_similarity(y.float(), y_dense.float(), dim=-1)
            qpos = torch.arange(t0, T)
            logits = torch.matmul(qd.reshape(B, Hkv, g, T - t0, dh),
                                  k.transpose(-1, -2).unsqueeze(2)) / math.sqrt(dh)  # fmt: skip
            causal = torch.arange(T)[None, :] <= qpos[:, None]
            p = torch.softmax(logits.masked_fill(~causal, -math.inf), -1)  # (B,Hkv,g,Tq,S)
            idx = st.indices.clamp_min(0).unsqueeze(2).expand(-1, -1, g, -1, -1)
            used = (st.indices >= 0).unsqueeze(2).float()
            a_true = (p.gather(-1, idx) * used).sum(-1).reshape(B, Hq, T - t0)
            fid.append({
                "layer": layer, "compression": c, "cosine_median": float(cos.median()),
                "cosine_p10": float(cos.flatten().quantile(0.1)),
                "alpha_abs_err_mean": float((st.alpha - a_true).abs().mean()),
                "alpha_true_mean": float(a_true.mean()),
                "coverage_mean": float(st.coverage.mean()),
            })  # fmt: skip
    return fid, qst
