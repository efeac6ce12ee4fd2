"""Unit-scaled transformer blocks: SwiGLU MLP, attention (GQA, RoPE, masks), pre-norm layer and
decoder. Residual branches are τ-weighted (Unit Scaling §5.2; u-μP Appendix G rule)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import functional as U
from ._coherence import pair_coherence
from ._depth import DepthModuleList
from ._functional_attention import _attention
from ._modules import Embedding, LayerNorm, Linear, LinearReadout, RMSNorm

__all__ = [
    "MLP",
    "Attention",
    "TransformerDecoder",
    "TransformerLayer",
    "apply_rope",
    "residual_taus",
]


def residual_taus(
    n_layers: int, residual_mult: float = 1.0, residual_attn_ratio: float = 1.0
) -> list[float]:
    """τ for each of the 2·n_layers residual branches (attention, MLP, attention, ...).

    u-μP Appendix G: with ρ = residual_attn_ratio, α_mlp = residual_mult·sqrt(2/(1+ρ²)),
    α_attn = ρ·α_mlp and τ_i = α_b(i) / sqrt(L/2 + n_attn(i)·α_attn² + n_mlp(i)·α_mlp²), where
    n_attn(i) = ⌊(i+1)/2⌋, n_mlp(i) = ⌊i/2⌋ count earlier branches. Feed τ_i to
    ``residual_split``/``residual_add`` (y = (τ f + x)/sqrt(1+τ²)).
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}.")
    L = 2 * n_layers
    a_mlp = residual_mult * math.sqrt(2.0 / (1.0 + residual_attn_ratio**2))
    a_attn = residual_attn_ratio * a_mlp
    taus = []
    for i in range(L):
        n_attn, n_mlp = (i + 1) // 2, i // 2
        a = a_attn if i % 2 == 0 else a_mlp
        taus.append(a / math.sqrt(L / 2 + n_attn * a_attn**2 + n_mlp * a_mlp**2))
    return taus


def _call(module: nn.Module, s: Tensor | float, *args: object) -> Tensor:
    """Run ``module`` with every parameter's gradient scaled by ``s`` (forward unchanged)."""
    params = {n: U.scale_bwd(p, s) for n, p in module.named_parameters()}
    return torch.func.functional_call(module, params, args)


def _kappa_scale(kappa: Tensor | float) -> Tensor | float:
    """κ^-1/2 from a precomputed κ (Python float stays a float: no device tensor, no sync)."""
    if isinstance(kappa, Tensor):
        if kappa.numel() != 1 or kappa.is_complex() or not kappa.is_floating_point():
            raise TypeError(
                f"kappa: expected a one-element float tensor or a Python float >= 1, got a "
                f"{kappa.dtype} tensor of shape {tuple(kappa.shape)}; pass pair_coherence(...)."
            )
        return kappa.reshape(()).to(torch.float32).rsqrt()
    if isinstance(kappa, bool) or not isinstance(kappa, (int, float)):
        raise TypeError(f"kappa: expected a Python float or a 0-d tensor, got {type(kappa)!r}.")
    if not math.isfinite(kappa) or kappa < 1.0:
        raise ValueError(
            f"kappa: expected a finite value >= 1 (κ = Σ_p n_p²/B), got {kappa}; compute it "
            "with pair_coherence(inputs, targets)."
        )
    return float(kappa) ** -0.5


def apply_rope(x: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding on ``(*, S, d)`` (d even); norm-preserving, so unit scale holds."""
    s, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"RoPE needs an even head size, got {d}.")
    half = d // 2
    inv = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    ang = torch.arange(s, device=x.device, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class MLP(nn.Module):
    """SwiGLU MLP: ``down(silu_glu(up(x), gate(x)))`` with unconstrained, mirrored projections.

    The up/gate (d→f) and down (f→d) projections' backward/forward scale ratios cancel, so the
    block's gradient is exact while every weight gradient is unit-scaled (fixes the anchor's
    1/sqrt(expansion) weight-gradient scale). ``mult`` is u-μP's α_ffn-act.
    Shapes: ``(*, d)`` → ``(*, d)``.
    """

    def __init__(
        self, hidden_size: int, expansion_factor: int = 4, *, mult: float = 1.0, bias: bool = False
    ) -> None:
        super().__init__()
        f = hidden_size * expansion_factor
        self.up = Linear(hidden_size, f, bias, constraint=None)
        self.gate = Linear(hidden_size, f, bias, constraint=None)
        self.down = Linear(f, hidden_size, bias, constraint=None)
        self.mult = mult

    def forward(self, x: Tensor) -> Tensor:
        return self.down(U.silu_glu(self.up(x), self.gate(x), mult=self.mult))


class Attention(nn.Module):
    """Unit-scaled multi-head attention with GQA/MQA, RoPE, causal/sliding-window/arbitrary masks.

    Args:
        hidden_size: d. n_heads: query heads. n_kv_heads: key/value heads (default n_heads;
            1 = MQA). head_size: default d / n_heads.
        fused_qkv: one (d → (H + 2Hkv)·dh) projection (default) or separate q/k/v projections.
        rope: apply rotary embeddings to q and k. is_causal / window: default masking.
        mult: u-μP α_attn-softmax (logits mult·qkᵀ/dh). dropout_p: attention dropout.
        value_correlation: ρ of the attention scale rule (default 0.1): in a deep causal
            model the values at different positions share a component, so near-uniform
            attention at initialisation shrinks them less than 1/N (see
            ``U.scaled_dot_product_attention``).
    Forward: ``x (B, S, d)``, optional ``attn_mask`` (bool True = attend, or additive,
    broadcastable to ``(B, H, S, S)``) → ``(B, S, d)``.
    """

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        head_size: int | None = None,
        *,
        fused_qkv: bool = True,
        rope: bool = True,
        is_causal: bool = True,
        window: int | None = None,
        mult: float = 1.0,
        value_correlation: float = 0.1,
        dropout_p: float = 0.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if n_heads % n_kv_heads:
            raise ValueError(
                f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads}); "
                "pick n_kv_heads from the divisors of n_heads."
            )
        if head_size is None:
            if hidden_size % n_heads:
                raise ValueError(
                    f"hidden_size {hidden_size} is not divisible by n_heads {n_heads}; pass "
                    "head_size= explicitly."
                )
            head_size = hidden_size // n_heads
        self.n_heads, self.n_kv_heads, self.head_size = n_heads, n_kv_heads, head_size
        self.rope, self.is_causal, self.window = rope, is_causal, window
        self.mult, self.dropout_p, self.fused_qkv = mult, dropout_p, fused_qkv
        self.value_correlation = value_correlation
        q_out, kv_out = n_heads * head_size, n_kv_heads * head_size
        if fused_qkv:
            self.qkv = Linear(hidden_size, q_out + 2 * kv_out, bias)
        else:
            self.q = Linear(hidden_size, q_out, bias)
            self.k = Linear(hidden_size, kv_out, bias)
            self.v = Linear(hidden_size, kv_out, bias)
        self.out = Linear(q_out, hidden_size, bias)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        b, seq, _ = x.shape
        h, hkv, dh = self.n_heads, self.n_kv_heads, self.head_size
        if self.fused_qkv:
            q, k, v = self.qkv(x).split((h * dh, hkv * dh, hkv * dh), dim=-1)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        q = q.view(b, seq, h, dh).transpose(1, 2)
        k = k.view(b, seq, hkv, dh).transpose(1, 2)
        v = v.view(b, seq, hkv, dh).transpose(1, 2)
        if self.rope:
            q, k = apply_rope(q), apply_rope(k)
        # The attention's output scale s is folded into the output projection's weight (exactly
        # the same output and gradients): pre-scaling v would be an extra activation-sized kernel
        # in forward and in backward wherever v is otherwise passed to SDPA as a view (CUDA).
        fold = type(self.out) is Linear
        o, s = _attention(
            q, k, v, attn_mask, self.dropout_p if self.training else 0.0, self.is_causal, None,
            self.window, self.mult, self.value_correlation, "to_output_scale", fold=fold,
        )  # fmt: skip
        o = o.transpose(1, 2).reshape(b, seq, h * dh)
        return self.out(o, _input_scale=s) if s != 1.0 else self.out(o)


def _norm(kind: str, d: int) -> nn.Module:
    if kind == "rms":
        return RMSNorm(d)
    if kind == "layer":
        return LayerNorm(d, bias=False)
    raise ValueError(f"norm must be 'rms' or 'layer', got {kind!r}.")


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer with τ-weighted residual branches.

    ``x = residual_apply(attn ∘ norm, x, attn_tau); x = residual_apply(mlp ∘ norm, x, mlp_tau)``.
    Keyword arguments not listed are passed to :class:`Attention`.
    Shapes: ``(B, S, d)`` → ``(B, S, d)``.
    """

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        *,
        mlp_expansion: int = 4,
        attn_tau: float = 1.0,
        mlp_tau: float = 1.0,
        act_mult: float = 1.0,
        norm: str = "rms",
        **attn_kwargs: object,
    ) -> None:
        super().__init__()
        self.attn_norm = _norm(norm, hidden_size)
        self.attn = Attention(hidden_size, n_heads, n_kv_heads, **attn_kwargs)  # type: ignore[arg-type]
        self.mlp_norm = _norm(norm, hidden_size)
        self.mlp = MLP(hidden_size, mlp_expansion, mult=act_mult)
        self.attn_tau, self.mlp_tau = attn_tau, mlp_tau

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        r, s = U.residual_split(x, self.attn_tau)
        x = U.residual_add(self.attn(self.attn_norm(r), attn_mask), s, self.attn_tau)
        r, s = U.residual_split(x, self.mlp_tau)
        return U.residual_add(self.mlp(self.mlp_norm(r)), s, self.mlp_tau)


class TransformerDecoder(nn.Module):
    """Unit-scaled decoder-only language model (embedding → layers → norm → readout).

    Args:
        vocab_size, hidden_size, n_layers, n_heads, n_kv_heads: model shape (GQA when
            n_kv_heads < n_heads).
        mlp_expansion: SwiGLU width factor.
        residual_mult, residual_attn_ratio: u-μP α_res and α_res-attn-ratio (→ τ's, see
            :func:`residual_taus`).
        attn_mult, act_mult, loss_mult: u-μP α_attn-softmax, α_ffn-act, α_loss-softmax.
        pair_grad_scale: scale all weight gradients by κ^-1/2, κ = Σ_p n_p²/B over the
            batch's repeated (input, target) token pairs (default True; see below).
        Remaining keywords (rope, window, dropout_p, fused_qkv, norm) configure the layers.

    ``forward(input_ids (B, S) int64, attn_mask=None, *, labels=None, kappa=None) -> logits
    (B, S, V)``; ``loss(input_ids, labels=None, attn_mask=None, *, kappa=None)``: next-token
    cross-entropy (labels default to the inputs shifted left; -100 is ignored). ``kappa``: a
    precomputed κ (0-d tensor or Python float >= 1, e.g. ``pair_coherence`` run once per batch
    in the data pipeline); when given, the decoder uses it instead of computing κ itself, which
    keeps the sort out of a compiled step and lets gradient-accumulation steps share one κ.

    Weight-gradient rule on natural text: every op scales its weight gradient by B^-1/2 for B
    independent tokens (Unit Scaling §5, Table A.2). At initialisation each token's gradient is
    set by its target and its activations mostly by its input token, so tokens that repeat an
    (input, target) pair add coherently; the effective token count is B/κ (see
    :func:`unit_scaling.nn.pair_coherence`). The decoder, the one place that sees the token ids,
    multiplies every parameter's gradient by κ^-1/2 (a backward-only scale on the weights, so
    activations and activation gradients are untouched). Random tokens give κ ≈ 1; bytes of
    Python source κ ≈ 20, where weight gradients would otherwise start 3–8× above unit. The
    pairs are (input_ids[:, :-1], input_ids[:, 1:]) unless ``labels`` (same shape as
    ``input_ids``) is given.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        n_layers: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        *,
        mlp_expansion: int = 4,
        residual_mult: float = 1.0,
        residual_attn_ratio: float = 1.0,
        attn_mult: float = 1.0,
        act_mult: float = 1.0,
        loss_mult: float = 1.0,
        norm: str = "rms",
        pair_grad_scale: bool = True,
        **layer_kwargs: object,
    ) -> None:
        super().__init__()
        self.pair_grad_scale = pair_grad_scale
        taus = residual_taus(n_layers, residual_mult, residual_attn_ratio)
        self.embedding = Embedding(vocab_size, hidden_size)
        self.layers = DepthModuleList(
            TransformerLayer(
                hidden_size, n_heads, n_kv_heads, mlp_expansion=mlp_expansion,
                attn_tau=taus[2 * i], mlp_tau=taus[2 * i + 1], act_mult=act_mult, norm=norm,
                mult=attn_mult, **layer_kwargs,
            )
            for i in range(n_layers)
        )  # fmt: skip
        self.final_norm = _norm(norm, hidden_size)
        self.head = LinearReadout(hidden_size, vocab_size)
        self.loss_mult = loss_mult

    def forward(
        self,
        input_ids: Tensor,
        attn_mask: Tensor | None = None,
        *,
        labels: Tensor | None = None,
        kappa: Tensor | float | None = None,
    ) -> Tensor:
        if not self.pair_grad_scale or not torch.is_grad_enabled():  # e.g. inference
            x = self.embedding(input_ids)
            for layer in self.layers:
                x = layer(x, attn_mask)
            return self.head(self.final_norm(x))
        if kappa is not None:
            s = _kappa_scale(kappa)
        elif labels is not None and labels.shape == input_ids.shape:
            s = pair_coherence(input_ids, labels).rsqrt()
        else:
            s = pair_coherence(input_ids[..., :-1], input_ids[..., 1:]).rsqrt()
        x = _call(self.embedding, s, input_ids)
        for layer in self.layers:
            x = _call(layer, s, x, attn_mask)
        return _call(self.head, s, _call(self.final_norm, s, x))

    def loss(
        self,
        input_ids: Tensor,
        labels: Tensor | None = None,
        attn_mask: Tensor | None = None,
        *,
        kappa: Tensor | float | None = None,
    ) -> Tensor:
        logits = self(input_ids, attn_mask, labels=labels, kappa=kappa)
        if labels is None:
            logits, labels = logits[:, :-1], input_ids[:, 1:]
        return U.cross_entropy(logits.flatten(0, -2), labels.flatten(), mult=self.loss_mult)
