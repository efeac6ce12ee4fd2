"""Shared pieces of the baselines: selected-set attention and score-based selection."""

from __future__ import annotations

import math

import torch

from sparq._reference import forced_positions, stable_topk_indices

__all__ = ["attend_selected", "causal_valid", "dense_attention", "select_by_priority"]


def causal_valid(B: int, T: int, S: int, device, attention_mask=None) -> torch.Tensor:
    """Bool ``(B, T, S)``: row ``t`` (position ``S - T + t``) sees keys ``<= S - T + t``."""
    pos = torch.arange(S, device=device)
    qpos = torch.arange(S - T, S, device=device)
    valid = (pos[None, :] <= qpos[:, None])[None].expand(B, T, S)
    if attention_mask is not None:
        valid = valid & attention_mask.bool()[:, None, :]
        valid = valid | (pos[None, None, :] == qpos[None, :, None])
    return valid


def attend_selected(
    q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, sel: torch.Tensor, scale: float
) -> torch.Tensor:
    """Exact attention restricted to ``sel`` (bool ``(B, Hkv, T, S)``, shared by the group).

    q ``(B, Hq, T, dh)``, K/V ``(B, Hkv, S, dh)`` → ``(B, Hq, T, dh)`` in q.dtype (fp32 inside).
    """
    B, Hq, T, dh = q.shape
    Hkv = K.shape[1]
    g = Hq // Hkv
    qf = q.float().reshape(B, Hkv, g, T, dh)
    logits = torch.matmul(qf, K.float().transpose(-1, -2).unsqueeze(2)) * scale
    logits = logits.masked_fill(~sel.unsqueeze(2), -math.inf)
    y = torch.matmul(torch.softmax(logits, -1), V.float().unsqueeze(2))
    return y.reshape(B, Hq, T, dh).to(q.dtype)


def dense_attention(q, K, V, valid: torch.Tensor, scale: float) -> torch.Tensor:
    """Dense attention over all valid keys (``valid`` bool ``(B, T, S)``)."""
    return attend_selected(q, K, V, valid[:, None].expand(-1, K.shape[1], -1, -1), scale)


def select_by_priority(
    prio: torch.Tensor,
    valid: torch.Tensor,
    k: int,
    local_window: int = 0,
    sink_tokens: int = 0,
) -> torch.Tensor:
    """Bool ``(B, Hkv, T, S)`` selection of the ``k`` highest ``prio`` (``(B, Hkv, T, S)``).

    Forced positions (sinks, window) come first; invalid ones never; ties to the lower index.
    """
    v4 = valid[:, None]
    forced = forced_positions(v4, local_window, sink_tokens)
    p = torch.where(forced, torch.full_like(prio, math.inf), prio)
    p = torch.where(v4, p, torch.full_like(p, -math.inf))
    idx = stable_topk_indices(p, k)
    used = v4.expand_as(p).gather(-1, idx)
    sel = torch.zeros_like(p, dtype=torch.bool)
    return sel.scatter_(-1, idx, used)


def group_softmax_scores(q, K, valid, scale) -> torch.Tensor:
    """Exact softmax attention summed over each KV head's query group: ``(B, Hkv, T, S)`` fp32."""
    B, Hq, T, dh = q.shape
    Hkv = K.shape[1]
    qf = q.float().reshape(B, Hkv, Hq // Hkv, T, dh)
    logits = torch.matmul(qf, K.float().transpose(-1, -2).unsqueeze(2)) * scale
    logits = logits.masked_fill(~valid[:, None, None], -math.inf)
    return torch.softmax(logits, -1).sum(2)
