"""A tiny Llama-style decoder (RMSNorm, RoPE, GQA, SwiGLU) with a pluggable attention function.

Used by the offline accuracy harness: the same trained weights are evaluated with dense attention
and with every sparse method by swapping ``attn`` in :meth:`TinyLlama.forward`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttnFn", "ModelConfig", "TinyLlama", "dense_causal_attention"]

#: ``attn(q, k, v, layer) -> y`` with q ``(B, Hq, T, dh)``, k/v ``(B, Hkv, T, dh)``, causal.
AttnFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class ModelConfig:
    """Sizes of :class:`TinyLlama` (``n_heads`` query heads share ``n_kv_heads`` KV heads)."""

    vocab: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int = 64
    d_ff: int = 256
    max_len: int = 512
    rope_base: float = 10000.0

    def to_dict(self) -> dict:
        """Plain dict (stored next to the weights)."""
        return asdict(self)


def dense_causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: int
) -> torch.Tensor:
    """Causal softmax attention with GQA (KV heads repeated), the dense baseline."""
    g = q.shape[1] // k.shape[1]
    if g > 1:
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class _RMSNorm(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class _Block(nn.Module):
    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        self.c = c
        self.norm1 = _RMSNorm(c.d_model)
        self.wq = nn.Linear(c.d_model, c.n_heads * c.head_dim, bias=False)
        self.wk = nn.Linear(c.d_model, c.n_kv_heads * c.head_dim, bias=False)
        self.wv = nn.Linear(c.d_model, c.n_kv_heads * c.head_dim, bias=False)
        self.wo = nn.Linear(c.n_heads * c.head_dim, c.d_model, bias=False)
        self.norm2 = _RMSNorm(c.d_model)
        self.w1 = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.w3 = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.w2 = nn.Linear(c.d_ff, c.d_model, bias=False)

    def forward(self, x, cos, sin, attn: AttnFn, layer: int) -> torch.Tensor:
        B, T, _ = x.shape
        c = self.c
        h = self.norm1(x)
        q = self.wq(h).view(B, T, c.n_heads, c.head_dim).transpose(1, 2)
        k = self.wk(h).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = self.wv(h).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        y = attn(q, k, v, layer).transpose(1, 2).reshape(B, T, -1)
        x = x + self.wo(y)
        h = self.norm2(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class TinyLlama(nn.Module):
    """Decoder-only LM; ``forward(ids (B, T) int64, attn=None) -> logits (B, T, vocab) fp32``."""

    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        if c.n_heads % c.n_kv_heads or c.head_dim % 2:
            raise ValueError(f"need n_heads % n_kv_heads == 0 and even head_dim, got {c}")
        self.config = c
        self.embed = nn.Embedding(c.vocab, c.d_model)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.n_layers))
        self.norm = _RMSNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab, bias=False)
        inv = 1.0 / (c.rope_base ** (torch.arange(0, c.head_dim, 2).float() / c.head_dim))
        ang = torch.arange(c.max_len).float()[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def forward(self, ids: torch.Tensor, attn: AttnFn | None = None) -> torch.Tensor:
        """Logits for every position; ``attn`` replaces causal dense attention in every layer."""
        T = ids.shape[1]
        if self.config.max_len < T:
            raise ValueError(f"sequence length {T} exceeds max_len={self.config.max_len}")
        attn = attn or dense_causal_attention
        x = self.embed(ids)
        cos, sin = self.cos[:T], self.sin[:T]
        for i, blk in enumerate(self.blocks):
            x = blk(x, cos, sin, attn, i)
        return self.head(self.norm(x)).float()
