"""A minimal random-init Llama-style decoder for the end-to-end decode benchmark.

RMSNorm, rotary embeddings, GQA attention, SwiGLU MLP; bf16 weights; a static KV cache holding K,
the S-contiguous copy K_t, V and the running mean of V per (sequence, KV head). One decode step is
CUDA-graph capturable: the write position and the live lengths live in device tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LlamaShape:
    hidden: int = 4096
    heads: int = 32
    kv_heads: int = 8
    layers: int = 8
    ffn: int = 14336
    vocab: int = 32000


class TinyLlama:
    """Weights and a static cache; :meth:`step` runs one greedy decode step in place."""

    def __init__(self, shape: LlamaShape, batch: int, max_len: int, device, dtype=torch.bfloat16):
        self.s, self.B, self.S = shape, batch, max_len
        self.dh = shape.hidden // shape.heads
        g = torch.Generator(device=device).manual_seed(0)

        def w(*size, std=0.02):
            return (torch.randn(*size, device=device, generator=g) * std).to(dtype)

        h, kvd = shape.hidden, shape.kv_heads * self.dh
        self.embed = w(shape.vocab, h, std=1.0)
        self.lm_head = w(shape.vocab, h)
        self.layers = [
            {
                "qkv": w(h + 2 * kvd, h),
                "o": w(h, h),
                "up": w(2 * shape.ffn, h),
                "down": w(h, shape.ffn),
            }
            for _ in range(shape.layers)
        ]
        cshape = (batch, shape.kv_heads, max_len, self.dh)
        self.K = [torch.zeros(cshape, device=device, dtype=dtype) for _ in self.layers]
        self.V = [torch.zeros(cshape, device=device, dtype=dtype) for _ in self.layers]
        self.K_t = [
            torch.zeros(batch, shape.kv_heads, self.dh, max_len, device=device, dtype=dtype)
            for _ in self.layers
        ]
        self.v_mean = [
            torch.zeros(batch, shape.kv_heads, self.dh, device=device) for _ in self.layers
        ]
        self.lens = torch.zeros(batch, device=device, dtype=torch.int64)
        self.tok = torch.zeros(batch, device=device, dtype=torch.int64)
        inv = 1.0 / (10000 ** (torch.arange(0, self.dh, 2, device=device).float() / self.dh))
        self.inv_freq = inv

    def prefill_random(self, length: int, seed: int = 1) -> None:
        """Fill positions ``[0, length)`` of every layer's cache with random K/V."""
        g = torch.Generator(device=self.lens.device).manual_seed(seed)
        for K, V, K_t, vm in zip(self.K, self.V, self.K_t, self.v_mean):
            K[:, :, :length].normal_(generator=g)
            V[:, :, :length].normal_(generator=g)
            K_t.copy_(K.transpose(-1, -2))
            vm.copy_(V[:, :, :length].float().mean(2))
        self.lens.fill_(length)

    @staticmethod
    def _rope(x: torch.Tensor, cis: torch.Tensor) -> torch.Tensor:
        """Rotary embedding of adjacent pairs as one complex product (fp32), ``x.dtype`` out."""
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * cis).flatten(-2).to(x.dtype)

    def step(self, attn) -> torch.Tensor:
        """One decode step for ``self.tok``; ``attn(q, K, V, K_t, v_mean, lens)`` -> (B,Hq,1,dh)."""
        s, B, dh = self.s, self.B, self.dh
        pos = self.lens  # position of the new token (uniform across the batch here)
        x = self.embed[self.tok][:, None, :]  # (B,1,h)
        new_lens = self.lens + 1
        ang = pos.float()[:, None, None, None] * self.inv_freq  # (B,1,1,dh/2), once per step
        cis = torch.polar(torch.ones_like(ang), ang)
        nqk = s.heads + s.kv_heads
        for L, K, V, K_t, vm in zip(self.layers, self.K, self.V, self.K_t, self.v_mean):
            hn = F.rms_norm(x, (s.hidden,))
            qkv = hn @ L["qkv"].T
            qk, v = qkv.split([nqk * dh, s.kv_heads * dh], dim=-1)
            # q and k heads rotated together: three small kernels instead of about twenty
            qk = self._rope(qk.reshape(B, nqk, 1, dh), cis)
            q, k = qk[:, : s.heads], qk[:, s.heads :]
            v = v.view(B, 1, s.kv_heads, dh).transpose(1, 2)
            idx = pos[:1]
            K.index_copy_(2, idx, k)
            V.index_copy_(2, idx, v)
            K_t.index_copy_(3, idx, k.transpose(-1, -2))
            vm.add_((v[:, :, 0].float() - vm) / new_lens.float()[:, None, None])
            a = attn(q, K, V, K_t, vm, new_lens)  # (B,Hq,1,dh)
            x = x + a.transpose(1, 2).reshape(B, 1, s.hidden) @ L["o"].T
            hn = F.rms_norm(x, (s.hidden,))
            gate, up = (hn @ L["up"].T).chunk(2, dim=-1)
            x = x + (F.silu(gate) * up) @ L["down"].T
        logits = F.rms_norm(x, (s.hidden,)) @ self.lm_head.T
        self.tok.copy_(logits[:, 0].argmax(-1))
        self.lens.copy_(new_lens)
        return self.tok
