"""Argument checks shared by the decode and multi-query entry points (clear errors, no magic)."""

from __future__ import annotations

import torch

__all__ = ["check_decode_args", "check_rk", "valid_mask_from"]


def check_rk(r: int, k: int, dh: int, local_window: int, sink_tokens: int) -> None:
    """Check the integer knobs of SparQ: 1 <= r <= dh, k >= 1, window/sinks >= 0."""
    for name, val in (
        ("r", r),
        ("k", k),
        ("local_window", local_window),
        ("sink_tokens", sink_tokens),
    ):
        if isinstance(val, bool) or not isinstance(val, int):
            raise TypeError(f"{name} must be an int, got {type(val).__name__} ({val!r})")
    if not 1 <= r <= dh:
        raise ValueError(
            f"r must satisfy 1 <= r <= head_dim={dh}, got r={r}; pick fewer query components "
            "(r = head_dim / compression is the usual choice)"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1 (number of positions fetched), got k={k}")
    if local_window < 0 or sink_tokens < 0:
        raise ValueError(
            f"local_window and sink_tokens must be >= 0, got {local_window} and {sink_tokens}"
        )


def check_decode_args(
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    K_t: torch.Tensor | None,
    *,
    multi_query: bool = False,
) -> None:
    """Validate shapes, dtypes and layouts of q, K, V and the optional transposed key copy K_t.

    Expected: q ``(B, Hq, 1, dh)`` (``(B, Hq, T, dh)`` when ``multi_query``), K and V
    ``(B, Hkv, S, dh)`` with ``Hq % Hkv == 0``, K_t ``(B, Hkv, dh, S)`` contiguous, all the same
    floating dtype and device.
    """
    for name, t in (("q", q), ("K", K), ("V", V)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{name} must be 4-D (batch, heads, length, head_dim), got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got dtype {t.dtype}")
    B, Hq, T, dh = q.shape
    if not multi_query and T != 1:
        raise ValueError(
            f"q must have query length 1 on the decode path (shape (B, Hq, 1, dh)), got "
            f"q.shape={tuple(q.shape)}; use sparq.sparq_attention_prefill for several positions"
        )
    if K.shape != V.shape:
        raise ValueError(
            f"K and V must have the same shape, got {tuple(K.shape)} and {tuple(V.shape)}"
        )
    if K.shape[0] != B or K.shape[3] != dh:
        raise ValueError(
            f"K/V shape {tuple(K.shape)} does not match q shape {tuple(q.shape)}: expected "
            f"(B={B}, Hkv, S, dh={dh})"
        )
    Hkv = K.shape[1]
    if Hkv < 1 or Hq % Hkv != 0:
        raise ValueError(
            f"mismatched head counts: q has Hq={Hq} heads and K/V have Hkv={Hkv}; Hq must be a "
            "multiple of Hkv (grouped-query attention)"
        )
    if K.shape[2] < 1:
        raise ValueError("K/V must hold at least one position (S >= 1)")
    for name, t in (("K", K), ("V", V)):
        if t.dtype != q.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but q has {q.dtype}; cast the cache or q")
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}")
    if K_t is not None:
        S = K.shape[2]
        if not isinstance(K_t, torch.Tensor):
            raise TypeError(f"K_t must be a torch.Tensor or None, got {type(K_t).__name__}")
        if tuple(K_t.shape) != (B, Hkv, dh, S):
            raise ValueError(
                f"K_t must have shape (B, Hkv, dh, S) = {(B, Hkv, dh, S)}, got {tuple(K_t.shape)}"
            )
        if K_t.dtype != q.dtype:
            raise TypeError(f"K_t has dtype {K_t.dtype} but q has {q.dtype}; cast the cache or q")
        if not K_t.is_contiguous():
            raise ValueError(
                "K_t must be contiguous (the S-contiguous second copy of K); pass "
                "K.transpose(-1, -2).contiguous() or use SparQCache which maintains it"
            )


def valid_mask_from(
    B: int,
    S: int,
    device: torch.device,
    seq_lens: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Return a bool ``(B, S)`` mask of valid key positions from ``seq_lens`` and/or a mask.

    ``seq_lens`` (int64 ``(B,)``) marks positions ``< seq_lens[b]`` valid (right padding);
    ``attention_mask`` (``(B, S)``, bool or 0/1) marks arbitrary positions, e.g. left padding.
    Both may be given; a position must then satisfy both.
    """
    valid = torch.ones(B, S, dtype=torch.bool, device=device)
    if seq_lens is not None:
        if not isinstance(seq_lens, torch.Tensor) or seq_lens.shape != (B,):
            got = tuple(seq_lens.shape) if isinstance(seq_lens, torch.Tensor) else type(seq_lens)
            raise ValueError(f"seq_lens must be an int64 tensor of shape (B,)=({B},), got {got}")
        if seq_lens.dtype != torch.int64:
            raise TypeError(f"seq_lens must be int64, got {seq_lens.dtype}; use .long()")
        sl = seq_lens.to(device)
        if bool(((sl < 1) | (sl > S)).any()):
            raise ValueError(f"seq_lens must lie in [1, S={S}], got {seq_lens.tolist()}")
        valid &= torch.arange(S, device=device, dtype=torch.int64)[None, :] < sl[:, None]
    if attention_mask is not None:
        if attention_mask.shape != (B, S):
            raise ValueError(
                f"attention_mask must have shape (B, S)=({B}, {S}), "
                f"got {tuple(attention_mask.shape)}"
            )
        valid &= attention_mask.to(device=device).bool()
        if bool((valid.sum(-1) == 0).any()):
            raise ValueError("every sequence needs at least one valid key position")
    return valid
