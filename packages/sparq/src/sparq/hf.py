"""Hugging Face ``transformers`` integration (extra ``sparq[hf]``).

``sparq.hf.patch(model, SparQConfig(compression=8))`` makes ``model.generate()`` use SparQ for
decode steps (one query token) and the model's own attention (its previous
``attn_implementation``, usually SDPA) for prefill. It works through the library's
attention-function registry (``AttentionInterface``, name ``"sparq"``) and a ``DynamicCache``
subclass that keeps the transposed key copy ``K_t`` and a running per-sequence mean of V — no
modeling files are copied or modified. Tested families: Llama, Mistral, Qwen2, Gemma, GPT-NeoX.

Batches of different prompt lengths (left padding) are supported: the padding mask marks invalid
positions, and r/k follow each step's live length (the longest sequence in the batch). Beam search
cache reordering is not supported by the K_t copy (it falls back to gathering from K).
"""

from __future__ import annotations

import functools
import inspect
import sys
import weakref
from typing import Any

import torch

from sparq._api import sparq_attention
from sparq._config import SparQConfig

__all__ = ["SparQDynamicCache", "is_patched", "patch", "unpatch"]  # noqa: F822 (lazy class)

_NAME = "sparq"
_ACTIVE: list[Any] = [None]  # weak reference to the cache updated most recently


def _require_transformers():
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "sparq.hf needs transformers: pip install 'sparq[hf]' (from this repository)"
        ) from e
    return transformers


def _cache_base():
    return _require_transformers().DynamicCache


class _CacheMixin:
    """Keeps ``K_t`` (B, Hkv, dh, S) and the running V sums per layer next to the HF cache."""

    def _sparq_init(self) -> None:
        self.sparq_kt: dict[int, torch.Tensor] = {}
        self.sparq_vsum: dict[int, torch.Tensor] = {}
        self.sparq_vcount: dict[int, torch.Tensor] = {}
        self.sparq_seen: dict[int, int] = {}

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        if not hasattr(self, "sparq_kt"):
            self._sparq_init()
        k, v = super().update(key_states, value_states, layer_idx, *args, **kwargs)
        new_t = key_states.transpose(-1, -2)
        old = self.sparq_kt.get(layer_idx)
        if old is not None and old.shape[-1] + key_states.shape[2] == k.shape[2]:
            self.sparq_kt[layer_idx] = torch.cat([old, new_t], dim=-1)
        else:
            self.sparq_kt[layer_idx] = k.transpose(-1, -2).contiguous()
        _ACTIVE[0] = weakref.ref(self)
        return k, v


@functools.cache
def _cache_class():
    base = _cache_base()

    class SparQDynamicCache(_CacheMixin, base):
        """``transformers.DynamicCache`` that also stores ``K_t`` and running V means for SparQ."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._sparq_init()

    SparQDynamicCache.__module__ = __name__
    return SparQDynamicCache


def __getattr__(name: str):
    if name == "SparQDynamicCache":
        return _cache_class()
    raise AttributeError(name)


def _valid_from_mask(mask: torch.Tensor | None, B: int, S: int, device) -> torch.Tensor:
    """Bool (B, S) valid key positions for the last query row of a 4-D HF mask."""
    if mask is None:
        return torch.ones(B, S, dtype=torch.bool, device=device)
    m = mask[:, 0, -1, :S] if mask.dim() == 4 else mask[:, :S]
    if m.dtype == torch.bool:
        valid = m
    else:
        valid = m == 0
    return valid.expand(B, S).to(device)


def _running_v_mean(cache, layer: int, value: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-sequence running mean of valid V rows, updated with the rows added since last call."""
    S = value.shape[2]
    seen = cache.sparq_seen.get(layer, 0) if cache is not None else 0
    if cache is None or layer not in cache.sparq_vsum or seen > S:
        w = valid.float()[:, None, :, None]
        vsum = (value.float() * w).sum(2)
        cnt = valid.sum(-1).float()
    else:
        w = valid[:, seen:].float()[:, None, :, None]
        vsum = cache.sparq_vsum[layer] + (value[:, :, seen:].float() * w).sum(2)
        cnt = cache.sparq_vcount[layer] + valid[:, seen:].sum(-1).float()
    if cache is not None:
        cache.sparq_vsum[layer] = vsum
        cache.sparq_vcount[layer] = cnt
        cache.sparq_seen[layer] = S
    return vsum / cnt.clamp_min(1.0)[:, None, None]


def _original_fn(module, name: str):
    tr = _require_transformers()
    if name != "eager":
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        fn = ALL_ATTENTION_FUNCTIONS.get(name)
        if fn is not None:
            return fn
    mod = sys.modules.get(type(module).__module__)
    fn = getattr(mod, "eager_attention_forward", None)
    if fn is None:  # pragma: no cover - every supported family defines it
        raise RuntimeError(f"cannot find the eager attention of {type(module).__name__} ({tr})")
    return fn


def sparq_attention_forward(module, query, key, value, attention_mask, *args, **kwargs):
    """Attention function registered as ``"sparq"``: SparQ on decode steps, original otherwise.

    Shapes follow transformers: query ``(B, Hq, q_len, dh)``, key/value ``(B, Hkv, S, dh)``;
    returns ``(B, q_len, Hq, dh)`` and ``None`` attention weights.
    """
    cfg: SparQConfig | None = getattr(module, "_sparq_config", None)
    orig = getattr(module, "_sparq_original", "sdpa")
    layer = getattr(module, "layer_idx", None)
    B, Hq, q_len, dh = query.shape
    Hkv, S = key.shape[1], key.shape[2]
    ref = _ACTIVE[0]
    cache = ref() if ref is not None else None
    kt = getattr(cache, "sparq_kt", {}).get(layer) if cache is not None else None
    if kt is None or kt.shape != (B, Hkv, dh, S):  # not the cache holding these keys
        cache = kt = None
    sparse = cfg is not None and q_len == 1 and Hq % Hkv == 0
    plan = None
    valid = None
    if sparse:
        valid = _valid_from_mask(attention_mask, B, S, query.device)
        live = int(valid.sum(-1).max())
        plan = cfg.plan(live, dh, Hq, Hkv)
        sparse = not plan.dense
    if not sparse:
        fn = _original_fn(module, orig)
        return fn(module, query, key, value, attention_mask, *args, **kwargs)
    scale = kwargs.get("scaling")
    if scale is None:
        scale = getattr(module, "scaling", None)
    K_t = kt if kt is not None and kt.dtype == key.dtype else None
    v_mean = _running_v_mean(cache, layer, value, valid) if plan.reallocation else None
    full = bool(valid.all())
    y = sparq_attention(
        query,
        key.contiguous(),
        value.contiguous(),
        r=plan.r,
        k=plan.k,
        local_window=plan.local_window,
        sink_tokens=plan.sink_tokens,
        v_mean=v_mean,
        K_t=K_t,
        attention_mask=None if full else valid,
        scale=float(scale) if scale is not None else None,
        reallocation=plan.reallocation,
    )
    return y.transpose(1, 2).contiguous(), None


def _register() -> None:
    _require_transformers()
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(_NAME, sparq_attention_forward)
    try:  # transformers >= 4.53 builds masks through a registry too
        from transformers.masking_utils import AttentionMaskInterface, eager_mask

        AttentionMaskInterface.register(_NAME, eager_mask)
    except ImportError:  # pragma: no cover - older transformers build eager-style masks
        pass


def _set_impl(model, name: str) -> None:
    for cfg in {
        id(c): c for c in (model.config, getattr(model.config, "text_config", None))
    }.values():
        if cfg is not None:
            cfg._attn_implementation = name


def is_patched(model) -> bool:
    """True when :func:`patch` has been applied to ``model``."""
    return getattr(model, "_sparq_original", None) is not None


def patch(model, config: SparQConfig):
    """Route the decode-step attention of ``model`` through SparQ (in place; returns ``model``).

    Args:
        model: a ``transformers`` causal LM (Llama, Mistral, Qwen2, Gemma, GPT-NeoX families).
        config: :class:`sparq.SparQConfig` — r/k or compression, window, sinks, reallocation,
            ``min_seq_len`` dense fallback.

    ``model.generate`` is wrapped to pass a :class:`SparQDynamicCache` unless the caller gives
    ``past_key_values``. Call :func:`unpatch` to restore the original attention.
    """
    if not isinstance(config, SparQConfig):
        raise TypeError(f"config must be a sparq.SparQConfig, got {type(config).__name__}")
    _register()
    original = getattr(model, "_sparq_original", None) or model.config._attn_implementation
    if original in (None, _NAME):
        original = "eager"
    n = 0
    for m in model.modules():
        if hasattr(m, "layer_idx") and hasattr(m, "config"):
            m._sparq_config = config
            m._sparq_original = original
            n += 1
    if n == 0:
        raise ValueError(f"no attention modules with a layer_idx found in {type(model).__name__}")
    model._sparq_original = original
    model._sparq_config = config
    _set_impl(model, _NAME)
    if not hasattr(model, "_sparq_generate"):
        gen = model.generate
        model._sparq_generate = gen

        try:  # transformers 5.x renamed past_key_values to cache
            params = inspect.signature(model.forward).parameters
        except (TypeError, ValueError):  # pragma: no cover
            params = {}
        cache_kw = "cache" if "cache" in params else "past_key_values"

        @functools.wraps(gen)
        def generate(*a, **kw):
            given = kw.get("cache") is not None or kw.get("past_key_values") is not None
            if not given and kw.get("use_cache", True):
                kw[cache_kw] = _cache_class()()
            return gen(*a, **kw)

        model.generate = generate
    return model


def unpatch(model):
    """Undo :func:`patch` (restores the original attention implementation and ``generate``)."""
    original = getattr(model, "_sparq_original", None)
    if original is None:
        return model
    _set_impl(model, original)
    for m in model.modules():
        for attr in ("_sparq_config", "_sparq_original"):
            if hasattr(m, attr) and m is not model:
                delattr(m, attr)
    if hasattr(model, "_sparq_generate"):
        model.generate = model._sparq_generate
        del model._sparq_generate
    model._sparq_original = None
    return model
