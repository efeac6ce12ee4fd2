"""SparQCache: a static, pre-allocated KV cache holding K twice (row- and S-contiguous) and v̄."""

from __future__ import annotations

import torch

from sparq._api import sparq_attention
from sparq._reference import SparQStats

__all__ = ["SparQCache"]


class SparQCache:
    """Static KV cache for SparQ decode (paper §3: "K stored twice"), ragged-batch aware.

    Buffers (allocated once, never resized, so CUDA graphs can capture appends and attention):

    * ``K``, ``V``: ``(B, Hkv, max_len, dh)`` row-major (step 2 gathers rows);
    * ``K_t``: ``(B, Hkv, dh, max_len)`` S-contiguous (step 1 gathers r rows); absent when
      ``k_once=True`` (saves a third of the memory; step 1 then gathers strided columns of K);
    * ``v_mean``: fp32 ``(B, Hkv, dh)`` running mean of each sequence's valid V rows;
    * ``seq_lens``: int64 ``(B,)`` live length of each sequence (positions beyond are padding).

    Args:
        batch, num_kv_heads, max_len, head_dim: buffer sizes.
        dtype, device: storage dtype/device of K, K_t, V.
        k_once: store K only once (no K_t).
    """

    def __init__(
        self,
        batch: int,
        num_kv_heads: int,
        max_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        k_once: bool = False,
    ) -> None:
        for name, v in (
            ("batch", batch),
            ("num_kv_heads", num_kv_heads),
            ("max_len", max_len),
            ("head_dim", head_dim),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be floating, got {dtype}")
        shape = (batch, num_kv_heads, max_len, head_dim)
        self.K = torch.zeros(shape, dtype=dtype, device=device)
        self.V = torch.zeros(shape, dtype=dtype, device=device)
        self.K_t: torch.Tensor | None = (
            None
            if k_once
            else torch.zeros(batch, num_kv_heads, head_dim, max_len, dtype=dtype, device=device)
        )
        self.v_mean = torch.zeros(batch, num_kv_heads, head_dim, dtype=torch.float32, device=device)
        self.seq_lens = torch.zeros(batch, dtype=torch.int64, device=device)
        self.k_once = k_once
        self.max_len = max_len

    def reset(self) -> None:
        """Forget all sequences (lengths and running means to zero; buffers are kept)."""
        self.seq_lens.zero_()
        self.v_mean.zero_()

    def append(self, k: torch.Tensor, v: torch.Tensor, num_new: torch.Tensor | None = None) -> None:
        """Append ``T`` new rows per sequence at its current length.

        Args:
            k, v: ``(B, Hkv, T, dh)`` new keys/values (cast to the cache dtype).
            num_new: optional int64 ``(B,)``: only the first ``num_new[b]`` rows of sequence ``b``
                are valid (ragged prefill with right-padded prompts); default all ``T``.
        """
        B, H, _, dh = self.K.shape
        if (
            k.shape != v.shape
            or k.dim() != 4
            or k.shape[0] != B
            or k.shape[1] != H
            or k.shape[3] != dh
        ):
            raise ValueError(
                f"k and v must both have shape (B={B}, Hkv={H}, T, dh={dh}), got "
                f"{tuple(k.shape)} and {tuple(v.shape)}"
            )
        T = k.shape[2]
        dev = self.K.device
        n = (
            torch.full((B,), T, dtype=torch.int64, device=dev)
            if num_new is None
            else num_new.to(device=dev, dtype=torch.int64)
        )
        if bool(((n < 0) | (n > T)).any()) or bool((self.seq_lens + n > self.max_len).any()):
            raise ValueError(
                f"cannot append {n.tolist()} rows to lengths {self.seq_lens.tolist()} with "
                f"max_len={self.max_len}; allocate a larger cache"
            )
        t = torch.arange(T, device=dev)
        ok = t[None, :] < n[:, None]  # (B, T)
        pos = (self.seq_lens[:, None] + t[None, :]).clamp_max(self.max_len - 1)  # int64 (B, T)
        kc = k.to(self.K.dtype)
        vc = v.to(self.V.dtype)
        okr = ok[:, None, :, None]
        idx = pos[:, None, :, None].expand(B, H, T, dh)
        old_k = self.K.gather(2, idx)
        old_v = self.V.gather(2, idx)
        self.K.scatter_(2, idx, torch.where(okr, kc, old_k))
        self.V.scatter_(2, idx, torch.where(okr, vc, old_v))
        if self.K_t is not None:
            idx_t = pos[:, None, None, :].expand(B, H, dh, T)
            old_t = self.K_t.gather(3, idx_t)
            new_t = kc.transpose(-1, -2)
            self.K_t.scatter_(3, idx_t, torch.where(ok[:, None, None, :], new_t, old_t))
        add = (vc.float() * okr).sum(2)  # (B, H, dh)
        total = self.seq_lens.to(torch.float32)[:, None, None]
        new_total = (self.seq_lens + n).to(torch.float32)[:, None, None]
        self.v_mean.copy_((self.v_mean * total + add) / new_total.clamp_min(1.0))
        self.seq_lens += n

    def attend(
        self,
        q: torch.Tensor,
        *,
        r: int,
        k: int,
        local_window: int = 0,
        sink_tokens: int = 0,
        scale: float | None = None,
        reallocation: bool | None = None,
        return_stats: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, SparQStats]:
        """SparQ decode over the cache for q ``(B, Hq, 1, dh)`` (see :func:`sparq_attention`)."""
        return sparq_attention(
            q,
            self.K,
            self.V,
            r=r,
            k=k,
            local_window=local_window,
            sink_tokens=sink_tokens,
            v_mean=self.v_mean,
            K_t=self.K_t,
            seq_lens=self.seq_lens,
            scale=scale,
            reallocation=reallocation,
            return_stats=return_stats,
        )
