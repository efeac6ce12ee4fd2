"""Shared fixtures: an independent, loop-based per-head SparQ reference written from the paper."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch


def loop_sparq(q, K, V, *, r, k, local_window=0, sink_tokens=0, seq_lens=None, scale=None,
               reallocation=False):  # fmt: skip
    """Scalar-loop SparQ (Alg. 1 with GQA), fp64, one (batch, kv head) at a time.

    Returns y ``(B, Hq, 1, dh)`` fp64 and a dict of per-(b, kv-head) selections (sorted lists).
    """
    B, Hq, _, dh = q.shape
    Hkv, S = K.shape[1], K.shape[2]
    g = Hq // Hkv
    sc = scale if scale is not None else 1.0 / math.sqrt(dh)
    y = torch.zeros(B, Hq, 1, dh, dtype=torch.float64)
    sels = {}
    for b in range(B):
        n = S if seq_lens is None else int(seq_lens[b])
        for j in range(Hkv):
            heads = [j * g + i for i in range(g)]
            qs = [q[b, h, 0].double() for h in heads]
            Kb = K[b, j, :n].double()
            Vb = V[b, j, :n].double()
            tot = sum(x.abs() for x in qs)
            comps = sorted(range(dh), key=lambda c: (-float(tot[c]), c))[:r]
            shats = []
            for qh in qs:
                cov = float(qh[comps].abs().sum() / qh.abs().sum())
                logit = [float(sum(qh[c] * Kb[s, c] for c in comps)) for s in range(n)]
                m = max(logit)
                t = sc / math.sqrt(cov)
                e = [math.exp((x - m) * t) for x in logit]
                z = sum(e)
                shats.append([x / z for x in e])
            forced = set(range(min(sink_tokens, n))) | set(range(max(0, n - local_window), n))
            prio = [math.inf if s in forced else sum(sh[s] for sh in shats) for s in range(n)]
            order = sorted(range(n), key=lambda s: (-prio[s], s))
            sel = sorted(order[: min(k, n)])
            sels[(b, j)] = sel
            for qh, sh, h in zip(qs, shats, heads):
                alpha = sum(sh[s] for s in sel)
                lg = torch.stack([qh @ Kb[s] * sc for s in sel])
                w = torch.softmax(lg, 0)
                out = sum(w[i] * Vb[s] for i, s in enumerate(sel))
                if reallocation:
                    out = alpha * out + (1 - alpha) * Vb.mean(0)
                y[b, h, 0] = out
    return y, sels


@pytest.fixture
def loop_reference():
    """The loop-based reference function."""
    return loop_sparq


def make_inputs(B, Hq, Hkv, S, dh, seed=0, dtype=torch.float32):
    """Random q ``(B, Hq, 1, dh)`` and K, V ``(B, Hkv, S, dh)``; q heavy-tailed like real models."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, 1, dh, generator=gen) * torch.rand(1, 1, 1, dh, generator=gen) ** 3 * 3
    K = torch.randn(B, Hkv, S, dh, generator=gen)
    V = torch.randn(B, Hkv, S, dh, generator=gen)
    return q.to(dtype), K.to(dtype), V.to(dtype)


@pytest.fixture
def inputs():
    """Factory for random decode inputs."""
    return make_inputs


def _selection_case(B, Hkv, G, S, seed=0, ragged=True):
    """Random approximate logits ``(B, Hkv, G, S)`` (std 3) with ragged lengths ``(B,)``: rows
    after the first get a random length in [S/2, S], positions past it are -inf."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, Hkv, G, S, generator=g) * 3
    lens = torch.full((B,), S, dtype=torch.int64)
    if ragged and B > 1:
        lens[1:] = torch.randint(S // 2, S + 1, (B - 1,), generator=g)
    pos = torch.arange(S)
    logits = logits.masked_fill((pos[None, :] >= lens[:, None])[:, None, None, :], -math.inf)
    return logits, lens


def _tile_stats(logits, tile=32):
    """Per-tile softmax statistics (max, sum of exp) of ``logits`` over S in tiles of ``tile``."""
    B, Hkv, G, S = logits.shape
    pad = (-S) % tile
    t = torch.nn.functional.pad(logits, (0, pad), value=-math.inf).reshape(B, Hkv, G, -1, tile)
    tmax = t.amax(-1)
    tsum = (t - tmax.nan_to_num(neginf=0)[..., None]).exp().sum(-1)
    return tmax, tsum


@pytest.fixture
def sel():
    """Inputs of the top-k selection kernels' tests: ``sel.case(...)`` and ``sel.stats(...)``."""
    return SimpleNamespace(case=_selection_case, stats=_tile_stats)
