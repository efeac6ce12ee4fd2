"""Plain-torch (standard parametrization) twin of :class:`unit_scaling.nn.TransformerDecoder`.

Same architecture (pre-norm RMSNorm, fused QKV, RoPE, causal SDPA with 1/sqrt(d_head) logits,
SwiGLU MLP with separate up/gate/down projections, untied readout) with torch's default
initialisation and plain residual adds: the baseline for scale comparisons and benchmarks.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ._transformer import apply_rope

__all__ = ["SPTransformerDecoder", "SPTransformerLayer"]


class SPTransformerLayer(nn.Module):
    """Standard pre-norm layer: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(
        self, hidden_size: int, n_heads: int, n_kv_heads: int | None = None, mlp_expansion: int = 4
    ) -> None:
        super().__init__()
        self.h, self.hkv = n_heads, n_kv_heads or n_heads
        self.dh = hidden_size // n_heads
        self.attn_norm = nn.RMSNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, (self.h + 2 * self.hkv) * self.dh, bias=False)
        self.out = nn.Linear(self.h * self.dh, hidden_size, bias=False)
        self.mlp_norm = nn.RMSNorm(hidden_size)
        f = hidden_size * mlp_expansion
        self.up = nn.Linear(hidden_size, f, bias=False)
        self.gate = nn.Linear(hidden_size, f, bias=False)
        self.down = nn.Linear(f, hidden_size, bias=False)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        b, s, _ = x.shape
        h, hkv, dh = self.h, self.hkv, self.dh
        q, k, v = self.qkv(self.attn_norm(x)).split((h * dh, hkv * dh, hkv * dh), dim=-1)
        q = apply_rope(q.view(b, s, h, dh).transpose(1, 2))
        k = apply_rope(k.view(b, s, hkv, dh).transpose(1, 2))
        v = v.view(b, s, hkv, dh).transpose(1, 2)
        o = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=attn_mask is None, enable_gqa=h > hkv
        )
        x = x + self.out(o.transpose(1, 2).reshape(b, s, h * dh))
        y = self.mlp_norm(x)
        return x + self.down(self.up(y) * F.silu(self.gate(y)))


class SPTransformerDecoder(nn.Module):
    """Standard-parametrization decoder with the same shapes as the unit-scaled one."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        n_layers: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        mlp_expansion: int = 4,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.layers = nn.ModuleList(
            SPTransformerLayer(hidden_size, n_heads, n_kv_heads, mlp_expansion)
            for _ in range(n_layers)
        )
        self.final_norm = nn.RMSNorm(hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size, bias=False)

    def forward(self, input_ids: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        x = self.embedding(input_ids)
        for layer in self.layers:
            x = layer(x, attn_mask)
        return self.head(self.final_norm(x))

    def loss(self, input_ids: Tensor, labels: Tensor | None = None) -> Tensor:
        logits = self(input_ids)
        if labels is None:
            logits, labels = logits[:, :-1], input_ids[:, 1:]
        return F.cross_entropy(logits.flatten(0, -2), labels.flatten())
