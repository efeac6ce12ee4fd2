"""A Llama-style decoder (RMSNorm, SwiGLU, RoPE, GQA, tied/untied) in three parametrizations.

``umup``: u-μP (unit-scaled ops, abc rules of :func:`u_mup.abc_rule`, τ-weighted residuals).
``mup``: μP abc rules with plain torch ops (relative to ``base_width``; equals SP there).
``sp``: standard parametrization (init std fan_in^-1/2, one global LR, plain residuals).
All three have the same parameter names and shapes and draw the same unit normals for a given
seed (the init is ``B·z``), so experiments compare like with like.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _ops as ops
from .._abc import abc_rule, residual_taus
from .._config import UMupConfig
from .._fp8 import FP8Sim
from .._roles import _ATTR, PARAMETRIZATIONS, ParamRole, RoleInfo, register_role, roles

__all__ = ["Decoder", "DecoderConfig"]


@dataclass(frozen=True)
class DecoderConfig:
    """Architecture of :class:`Decoder`.

    Attributes:
        vocab_size: V. width: d_model. n_layers: number of (attention, MLP) layers.
        head_dim: per-head dim (fixed across widths; heads = width / head_dim).
        kv_groups: query heads per key/value head (1 = MHA; heads = MQA).
        ffn_ratio: SwiGLU hidden size / width. tied: share embedding and readout.
        parametrization: ``"umup"``, ``"mup"`` or ``"sp"``. base_width: μP base width.
    """

    vocab_size: int = 256
    width: int = 128
    n_layers: int = 2
    head_dim: int = 16
    kv_groups: int = 1
    ffn_ratio: float = 2.0
    tied: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    parametrization: str = "umup"
    base_width: int = 128

    def __post_init__(self) -> None:
        for k in ("vocab_size", "width", "n_layers", "head_dim", "kv_groups", "base_width"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"DecoderConfig.{k} must be a positive int, got {v!r}")
        if self.width % self.head_dim:
            raise ValueError(
                f"width {self.width} is not a multiple of head_dim {self.head_dim}; pick a width "
                "that is, or change head_dim"
            )
        if self.n_heads % self.kv_groups:
            raise ValueError(
                f"{self.n_heads} heads cannot be split into groups of kv_groups={self.kv_groups}"
            )
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"parametrization must be one of {PARAMETRIZATIONS}, got {self.parametrization!r}"
            )
        if not self.ffn_ratio > 0:
            raise ValueError(f"ffn_ratio must be > 0, got {self.ffn_ratio}")

    @property
    def n_heads(self) -> int:
        return self.width // self.head_dim

    @property
    def n_kv_heads(self) -> int:
        return self.n_heads // self.kv_groups

    @property
    def ffn_dim(self) -> int:
        return max(1, round(self.ffn_ratio * self.width))

    def to_dict(self) -> dict:
        return asdict(self)


def _rope(x: Tensor, theta: float) -> Tensor:
    """Rotary embedding (rotate-half convention) of ``x: [B, H, S, d]``."""
    s, d = x.shape[-2], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    f = torch.outer(torch.arange(s, device=x.device, dtype=torch.float32), inv)
    emb = torch.cat((f, f), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class _Block(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        d, f = cfg.width, cfg.ffn_dim
        hq, hkv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
        self.attn_norm = nn.Parameter(torch.empty(d))
        self.wq = nn.Parameter(torch.empty(hq, d))
        self.wk = nn.Parameter(torch.empty(hkv, d))
        self.wv = nn.Parameter(torch.empty(hkv, d))
        self.wo = nn.Parameter(torch.empty(d, hq))
        self.mlp_norm = nn.Parameter(torch.empty(d))
        self.w_gate = nn.Parameter(torch.empty(f, d))
        self.w_up = nn.Parameter(torch.empty(f, d))
        self.w_down = nn.Parameter(torch.empty(d, f))
        m = cfg.width / cfg.base_width
        kw = {"depth": cfg.n_layers, "width_mult": m, "parametrization": cfg.parametrization}
        for n in ("attn_norm", "mlp_norm"):
            register_role(self, n, ParamRole.NORM, fan_in=1, fan_out=d, **kw)
        for n in ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"):
            register_role(self, n, ParamRole.HIDDEN, **kw)
        self.cfg = cfg

    def forward(self, x: Tensor, ctx: _Ctx) -> Tensor:
        """One (attention, MLP) layer: ``x: [B, S, width] -> [B, S, width]``.

        ``ctx`` carries the decoder-wide settings (u-μP config, the two τ's of this layer, FP8
        simulation). A real ``forward`` so that module hooks fire -- e.g. FSDP2's per-block
        ``fully_shard(block)`` all-gathers its parameters here.
        """
        if ctx.umup:
            ta, tm = ctx.taus
            r, s = ops.residual_split(x, ta)
            x = ops.residual_add(self._attn(self._norm(r, self.attn_norm), ctx), s, ta)
            r, s = ops.residual_split(x, tm)
            return ops.residual_add(self._mlp(self._norm(r, self.mlp_norm), ctx), s, tm)
        x = x + self._attn(self._norm(x, self.attn_norm), ctx)
        return x + self._mlp(self._norm(x, self.mlp_norm), ctx)

    def _attn(self, h: Tensor, ctx: _Ctx) -> Tensor:
        c = self.cfg
        b, s, _ = h.shape
        q = _lin(h, self.wq, ctx).view(b, s, c.n_heads, c.head_dim).transpose(1, 2)
        k = _lin(h, self.wk, ctx).view(b, s, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = _lin(h, self.wv, ctx).view(b, s, c.n_kv_heads, c.head_dim).transpose(1, 2)
        q, k = _rope(q, c.rope_theta), _rope(k, c.rope_theta)
        if ctx.umup:
            o = ops.sdpa(q, k, v, ctx.config.alpha_attn_softmax)
        else:
            o = ops.sdpa(q, k, v, math.sqrt(c.head_dim), scaled=False)  # logits q·kᵀ/√d
        return _lin(o.transpose(1, 2).reshape(b, s, -1), self.wo, ctx)

    def _mlp(self, h: Tensor, ctx: _Ctx) -> Tensor:
        up, gate = _lin(h, self.w_up, ctx), _lin(h, self.w_gate, ctx)
        if ctx.umup:
            a = ops.silu_glu(up, gate, ctx.config.alpha_ffn_act)
        else:
            a = up * F.silu(gate)
        return _lin(a, self.w_down, ctx)

    def _norm(self, x: Tensor, w: Tensor) -> Tensor:
        return _rms(x, w, self.cfg)


class _Ctx:
    """Decoder-wide settings a block needs in its forward (not module state)."""

    __slots__ = ("config", "fp8", "taus", "umup")

    def __init__(self, config: UMupConfig, fp8: FP8Sim | None, taus: tuple, umup: bool) -> None:
        self.config, self.fp8, self.taus, self.umup = config, fp8, taus, umup


def _lin(x: Tensor, w: Tensor, ctx: _Ctx) -> Tensor:
    if ctx.fp8 is not None:
        x, w = ctx.fp8(x), ctx.fp8(w)
    return ops.linear(x, w) if ctx.umup else F.linear(x, w)


def _rms(x: Tensor, w: Tensor, cfg: DecoderConfig) -> Tensor:
    if cfg.parametrization == "umup":
        return ops.rms_norm(x, w, cfg.norm_eps)
    return F.rms_norm(x, (x.shape[-1],), w, cfg.norm_eps)


class _Table(nn.Module):
    def __init__(self, rows: int, cols: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(rows, cols))


class Decoder(nn.Module):
    """Llama-style causal decoder.

    ``forward(idx: LongTensor[B, S]) -> logits: Tensor[B, S, V]`` (the inputs of the loss
    softmax, α_loss_softmax included). ``loss(idx, targets) -> scalar`` is the mean cross-entropy
    (its value equals ``F.cross_entropy(logits, targets)``; the u-μP backward is unit-scaled).

    Args:
        cfg: :class:`DecoderConfig`. umup: :class:`u_mup.UMupConfig` (α's act only for ``umup``).
        seed: seed of the initial weights (``None``: torch's global RNG).
        device: e.g. ``"meta"`` to build without memory; then ``to_empty`` + ``reset_parameters``.
    """

    def __init__(
        self,
        cfg: DecoderConfig,
        umup: UMupConfig | None = None,
        *,
        seed: int | None = 0,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(cfg, DecoderConfig):
            raise TypeError(f"cfg must be a DecoderConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.umup_config = umup or UMupConfig()
        self.fp8: FP8Sim | None = None
        self.seed = seed
        p, d, v = cfg.parametrization, cfg.width, cfg.vocab_size
        m = d / cfg.base_width
        with torch.device(device) if device is not None else _nullctx():
            self.embed = _Table(v, d)
            self.layers = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
            self.norm = nn.Parameter(torch.empty(d))
            self.head = None if cfg.tied else _Table(v, d)
        kw = {"width_mult": m, "parametrization": p}
        register_role(self.embed, "weight", ParamRole.EMBEDDING, fan_in=v, fan_out=d, **kw)
        register_role(self, "norm", ParamRole.NORM, fan_in=1, fan_out=d, **kw)
        if self.head is not None:
            register_role(self.head, "weight", ParamRole.OUTPUT, fan_in=d, fan_out=v, **kw)
        self.taus = residual_taus(cfg.n_layers, self.umup_config)
        if not any(t.is_meta for t in self.parameters()):
            self.reset_parameters()

    # ------------------------------------------------------------------ init and metadata
    def reset_parameters(self) -> None:
        """Initialise every parameter to ``B·z`` (z ~ N(0,1) from ``seed``; zeros/ones for B=0
        and norms), B from the parametrization's abc rule."""
        gen = torch.Generator(device="cpu")
        if self.seed is not None:
            gen.manual_seed(self.seed)
        else:
            gen.seed()
        table = roles(self)
        with torch.no_grad():
            for name, p in self.named_parameters():
                info = table[name]
                b = abc_rule(info, self.umup_config).b
                if info.role is ParamRole.NORM:
                    p.fill_(1.0)
                elif b == 0.0:
                    p.zero_()
                else:
                    z = torch.randn(p.shape, generator=gen, dtype=torch.float32)
                    p.copy_((z * b).to(p.dtype))

    def get_extra_state(self) -> dict:
        return {
            "roles": {n: i.to_dict() for n, i in roles(self).items()},
            "umup_config": self.umup_config.to_dict(),
            "decoder_config": self.cfg.to_dict(),
        }

    def set_extra_state(self, state: dict) -> None:
        mods = dict(self.named_modules())
        for mod in mods.values():
            mod.__dict__.pop(_ATTR, None)
        for name, d in state["roles"].items():
            owner, _, local = name.rpartition(".")
            mod = mods[owner]
            mod.__dict__.setdefault(_ATTR, {})[local] = RoleInfo.from_dict(d)
        self.umup_config = UMupConfig.from_dict(state["umup_config"])
        self.taus = residual_taus(self.cfg.n_layers, self.umup_config)

    # ------------------------------------------------------------------ forward
    def _norm(self, x: Tensor, w: Tensor) -> Tensor:
        return _rms(x, w, self.cfg)

    def hidden_states(self, idx: Tensor) -> list[Tensor]:
        """Residual stream after the embedding and after every block: ``n_layers + 1`` tensors
        of shape ``[B, S, width]`` (used by the coord check)."""
        return self._trunk(idx)[1]

    def _trunk(self, idx: Tensor) -> tuple[Tensor, list[Tensor]]:
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"idx must be an integer tensor [B, S], got {idx.dtype}")
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape [B, S], got {tuple(idx.shape)}")
        umup = self.cfg.parametrization == "umup"
        w_e = self.embed.weight
        x = ops.embedding(idx, w_e) if umup else F.embedding(idx, w_e)
        states = [x]
        for i, blk in enumerate(self.layers):
            ctx = _Ctx(self.umup_config, self.fp8, tuple(self.taus[2 * i : 2 * i + 2]), umup)
            x = blk(x, ctx)
            states.append(x)
        return x, states

    def forward(self, idx: Tensor) -> Tensor:
        return self.forward_with_states(idx)[0]

    def forward_with_states(self, idx: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``(logits, residual stream states)`` from one pass (see :meth:`hidden_states`)."""
        x, states = self._trunk(idx)
        x = self._norm(x, self.norm)
        w = self.embed.weight if self.head is None else self.head.weight
        if self.fp8 is not None:
            x, w = self.fp8(x), self.fp8(w)
        p = self.cfg.parametrization
        if p == "umup":
            return ops.linear_readout(x, w) * self.umup_config.alpha_loss_softmax, states
        if p == "mup":
            w = w * (self.cfg.base_width / self.cfg.width)
        return F.linear(x, w), states

    def loss(self, idx: Tensor, targets: Tensor, logits: Tensor | None = None) -> Tensor:
        """Mean next-token cross-entropy (nats); ``targets: LongTensor[B, S]``."""
        logits = self(idx) if logits is None else logits
        if self.cfg.parametrization == "umup":
            return ops.cross_entropy(logits, targets)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


class _nullctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None
