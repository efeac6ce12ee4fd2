"""Hugging Face bridge (extra ``[hf]``): build u-μP models from a ``LlamaConfig`` and export any
of our decoders to a stock ``transformers`` ``LlamaForCausalLM`` by folding every multiplier
(u-μP's A's, unit-scaling factors, α's and residual τ's) into the weights."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ._config import UMupConfig
from ._ops import sdpa_scale, silu_glu_scale
from .models import Decoder, DecoderConfig

__all__ = ["export_to_sp", "from_hf_config"]


def _transformers():
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "u_mup.hf needs the optional dependency transformers: pip install 'u-mup[hf]'"
        ) from e
    return transformers


def from_hf_config(
    config: Any, umup: UMupConfig | None = None, *, parametrization: str = "umup", seed: int = 0
) -> Decoder:
    """A :class:`Decoder` with the architecture of a ``transformers.LlamaConfig``.

    Raises:
        ValueError: settings our decoder does not model (biases, non-SiLU act, rope scaling).
    """
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ValueError("attention_bias/mlp_bias=True is not supported; set them to False")
    if getattr(config, "hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act must be 'silu', got {config.hidden_act!r}")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"only default RoPE is supported, got rope settings {rope}")
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    d = config.hidden_size
    head_dim = getattr(config, "head_dim", None) or d // config.num_attention_heads
    if head_dim * config.num_attention_heads != d:
        raise ValueError("hidden_size must equal num_attention_heads * head_dim")
    kv = config.num_key_value_heads or config.num_attention_heads
    cfg = DecoderConfig(
        vocab_size=config.vocab_size,
        width=d,
        n_layers=config.num_hidden_layers,
        head_dim=head_dim,
        kv_groups=config.num_attention_heads // kv,
        ffn_ratio=config.intermediate_size / d,
        tied=bool(config.tie_word_embeddings),
        rope_theta=float(theta),
        norm_eps=float(config.rms_norm_eps),
        parametrization=parametrization,
    )
    if cfg.ffn_dim != config.intermediate_size:
        raise ValueError(f"intermediate_size {config.intermediate_size} is not representable")
    return Decoder(cfg, umup, seed=seed)


def _llama_config(c: DecoderConfig, max_positions: int, eps: float):
    tf = _transformers()
    kw: dict[str, Any] = {
        "vocab_size": c.vocab_size,
        "hidden_size": c.width,
        "intermediate_size": c.ffn_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim,
        "rms_norm_eps": eps,
        "max_position_embeddings": max_positions,
        "tie_word_embeddings": c.tied,
        "attention_bias": False,
        "mlp_bias": False,
        "hidden_act": "silu",
    }
    if "rope_parameters" in inspect.signature(tf.LlamaConfig.__init__).parameters:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": c.rope_theta}
    else:  # transformers 4.x
        kw["rope_theta"] = c.rope_theta
    return tf.LlamaConfig(**kw)


@torch.no_grad()
def export_to_sp(model: Decoder, max_positions: int = 4096, seq_len: int | None = None):
    """Return a ``transformers.LlamaForCausalLM`` whose logits equal ``model``'s (fp32).

    The residual stream is rescaled so that plain ``x + f(x)`` adds reproduce the τ-weighted,
    renormalised u-μP adds (RMSNorm makes each branch input scale-free; the rescale is folded into
    the branch output projections). The u-μP attention output scale depends on the sequence
    length S (reference §2.2), so a ``umup`` export is exact for sequences of length ``seq_len``
    (pass the length you will run, e.g. the training length). Norm ``eps`` is folded as well.

    Raises:
        TypeError: ``model`` is not a :class:`u_mup.models.Decoder`.
        ValueError: a ``umup`` model exported without ``seq_len``.
    """
    if not isinstance(model, Decoder):
        raise TypeError(f"export_to_sp expects a u_mup.models.Decoder, got {type(model).__name__}")
    tf = _transformers()
    c, u = model.cfg, model.umup_config
    umup = c.parametrization == "umup"
    if umup and seq_len is None:
        raise ValueError(
            "export_to_sp(umup model) needs seq_len=<sequence length> (the unit-scaled attention "
            "output factor depends on it)"
        )
    d, f, hq = c.width, c.ffn_dim, c.n_heads * c.head_dim
    if umup:
        out_scale = u.alpha_loss_softmax / d
    elif c.parametrization == "mup":
        out_scale = c.base_width / d
    else:
        out_scale = 1.0
    # Tied: HF's stream is ours / p0 (p0 = 1/out_scale); RMSNorm's eps is rescaled to match.
    eps = c.norm_eps * out_scale**2 if c.tied else c.norm_eps
    hf = tf.LlamaForCausalLM(_llama_config(c, max_positions, eps)).float().eval()
    lm = hf.model

    def put(dst: torch.nn.Parameter, src: torch.Tensor) -> None:
        dst.copy_(src.detach().to(dst.dtype, copy=True))

    w_e = model.embed.weight.float()
    w_out = (model.embed.weight if c.tied else model.head.weight).float()
    p = 1.0  # stream scale: ours = p · HF's
    if c.tied:
        p = 1.0 / out_scale
        put(lm.embed_tokens.weight, w_e * out_scale)
    else:
        put(lm.embed_tokens.weight, w_e)
        put(hf.lm_head.weight, w_out * out_scale)
    attn_logit = u.alpha_attn_softmax / c.head_dim**0.5 if umup else 1.0
    for i, (blk, hl) in enumerate(zip(model.layers, lm.layers)):
        if umup:
            a_in, a_hid = d**-0.5, hq**-0.5
            s_attn = sdpa_scale(u.alpha_attn_softmax, c.head_dim, seq_len)
            alpha = u.alpha_ffn_act
            s_glu, a_f = silu_glu_scale(alpha), f**-0.5
        else:
            a_in = a_hid = a_f = s_attn = alpha = s_glu = 1.0
        branch = []
        for tau in (model.taus[2 * i], model.taus[2 * i + 1]) if umup else (None, None):
            if tau is None:
                a_skip, a_br = 1.0, 1.0
            else:
                a_skip = (1 + tau * tau) ** -0.5
                a_br = tau * a_skip
            branch.append(a_br / (a_skip * p))
            p *= a_skip
        at, ml = hl.self_attn, hl.mlp
        put(hl.input_layernorm.weight, blk.attn_norm.float())
        put(at.q_proj.weight, blk.wq.float() * a_in * attn_logit)
        put(at.k_proj.weight, blk.wk.float() * a_in)
        put(at.v_proj.weight, blk.wv.float() * a_in)
        put(at.o_proj.weight, blk.wo.float() * a_hid * s_attn * branch[0])
        put(hl.post_attention_layernorm.weight, blk.mlp_norm.float())
        put(ml.gate_proj.weight, blk.w_gate.float() * a_in * alpha)
        put(ml.up_proj.weight, blk.w_up.float() * a_in * s_glu / alpha)
        put(ml.down_proj.weight, blk.w_down.float() * a_f * branch[1])
    put(lm.norm.weight, model.norm.float())
    if c.tied:
        hf.tie_weights()
    return hf
