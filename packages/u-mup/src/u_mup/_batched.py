"""Many runs of the same architecture trained at once as one stacked model.

An LR grid (or an α grid, or several seeds) of one width is ``K`` independent models with the
same shapes. Their parameters are stacked into one ``[K, P]`` leaf tensor; the forward pass is
the decoder of :mod:`u_mup.models` written with batched matmuls (``torch.bmm``) over the K axis,
and AdamW runs on the whole ``[K, P]`` buffer with a per-row LR. Each row sees exactly the ops,
initial weights, data order, LR schedule and optimizer of :func:`u_mup.sweep.train_run` for its
own :class:`~u_mup.sweep.RunSpec` (tested equal in fp32), but small models stop being
launch-bound: one process trains a whole grid with a handful of large kernels.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _ops as ops
from ._abc import residual_taus
from ._config import UMupConfig
from ._optim import param_groups
from ._train import RunSpec, _lr_factor, _source, build_model
from .models._decoder import _rope

__all__ = ["Variant", "train_batched"]


@dataclass(frozen=True)
class Variant:
    """What differs between the rows of a batched run: global LR η, seed (init and data order)
    and the u-μP α's that differ from 1 (names of :class:`u_mup.UMupConfig` fields)."""

    lr: float
    seed: int = 0
    alphas: dict[str, Any] = field(default_factory=dict)


class _ScaleT(torch.autograd.Function):
    """``x·fwd`` forward, ``g·bwd`` backward, with per-row tensor scales ``[K, 1, 1]``."""

    @staticmethod
    def forward(ctx, x: Tensor, fwd: Tensor, bwd: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(bwd)
        return x * fwd.to(x.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        (bwd,) = ctx.saved_tensors
        return g * bwd.to(g.dtype), None, None


def _sfb(x: Tensor, fwd: float | Tensor, bwd: float | Tensor) -> Tensor:
    if isinstance(fwd, float) and isinstance(bwd, float):
        return ops.scale_fb(x, fwd, bwd)
    like = fwd if isinstance(fwd, Tensor) else bwd
    assert isinstance(like, Tensor)
    f = fwd if isinstance(fwd, Tensor) else torch.full_like(like, fwd)
    b = bwd if isinstance(bwd, Tensor) else torch.full_like(like, bwd)
    return _ScaleT.apply(x, f, b)


def _mul(x: Tensor, s: float | Tensor) -> Tensor:
    if isinstance(s, float):
        return x if s == 1.0 else x * s
    return x * s.to(x.dtype)


class _Stack:
    """Per-row constants of K models (floats when equal in every row, else ``[K, 1, 1]``)."""

    def __init__(self, spec: RunSpec, configs: list[UMupConfig], device: torch.device) -> None:
        k, s = len(configs), spec.seq_len

        def per(vals: list[float]) -> float | Tensor:
            if all(v == vals[0] for v in vals):
                return float(vals[0])
            return torch.tensor(vals, dtype=torch.float32, device=device).view(k, 1, 1)

        self.ffn = per([c.alpha_ffn_act for c in configs])
        ffn = [c.alpha_ffn_act for c in configs]
        self.ffn_scale = per([ops.silu_glu_scale(a) / a for a in ffn])
        self.attn = per([c.alpha_attn_softmax for c in configs])
        att = [c.alpha_attn_softmax for c in configs]
        self.attn_scale = per([ops.sdpa_scale(a, spec.head_dim, s) for a in att])
        self.loss = per([c.alpha_loss_softmax for c in configs])
        taus = [residual_taus(spec.n_layers, c) for c in configs]
        self.taus = [per([t[i] for t in taus]) for i in range(2 * spec.n_layers)]


def _split(x: Tensor, tau: float | Tensor) -> tuple[Tensor, Tensor]:
    a = (1.0 + tau * tau) ** -0.5
    return _sfb(x, 1.0, tau * a), _sfb(x, 1.0, a)


def _add(branch: Tensor, skip: Tensor, tau: float | Tensor) -> Tensor:
    a = (1.0 + tau * tau) ** -0.5
    return _sfb(branch, tau * a, 1.0) + _sfb(skip, a, 1.0)


def _forward(
    w: dict[str, Tensor], idx: Tensor, tgt: Tensor, spec: RunSpec, c: _Stack, vocab: int
) -> Tensor:
    """Per-row mean cross-entropy ``[K]`` of K stacked decoders; idx, tgt: ``[K, B, S]``."""
    k, b, s = idx.shape
    n, umup, hd, eps = b * s, spec.parametrization == "umup", spec.head_dim, 1e-6
    theta = 10000.0  # DecoderConfig's defaults (build_model does not change them)
    offs = (torch.arange(k, device=idx.device) * vocab).view(k, 1, 1)
    w_e = w["embed.weight"]
    if umup:
        w_e = ops.scale_fb(w_e, 1.0, math.sqrt(vocab / n))
    x = F.embedding((idx + offs).view(k, n), w_e.reshape(k * vocab, -1))  # [K, N, d]

    def lin(h: Tensor, wt: Tensor) -> Tensor:
        if umup:
            wt = ops.scale_fb(wt, wt.shape[-1] ** -0.5, n**-0.5)
        return torch.bmm(h, wt.transpose(1, 2))

    def norm(h: Tensor, g: Tensor) -> Tensor:
        if umup:
            g = ops.scale_fb(g, 1.0, n**-0.5)
        return F.rms_norm(h, (h.shape[-1],), None, eps) * g[:, None, :]

    def attn(h: Tensor, p: str) -> Tensor:
        def heads(t: Tensor) -> Tensor:
            return t.reshape(k * b, s, -1, hd).transpose(1, 2)

        q, kk, v = (heads(lin(h, w[p + n_])) for n_ in ("wq", "wk", "wv"))
        q, kk = _rope(q, theta), _rope(kk, theta)
        if umup:
            if isinstance(c.attn, float):
                o = ops.sdpa(q, kk, v, c.attn)
            else:
                m = c.attn.view(k, 1, 1, 1, 1).to(q.dtype)
                q = (q.view(k, b, *q.shape[1:]) * m).view_as(q)
                o = ops.sdpa(q, kk, v, 1.0, scaled=False)
        else:
            o = ops.sdpa(q, kk, v, math.sqrt(hd), scaled=False)
        o = o.transpose(1, 2).reshape(k, n, -1)
        if umup and not isinstance(c.attn, float):
            o = _mul(o, c.attn_scale)
        return lin(o, w[p + "wo"])

    def mlp(h: Tensor, p: str) -> Tensor:
        up, gate = lin(h, w[p + "w_up"]), lin(h, w[p + "w_gate"])
        if umup:
            a = _mul(up * F.silu(_mul(gate, c.ffn)), c.ffn_scale)
        else:
            a = up * F.silu(gate)
        return lin(a, w[p + "w_down"])

    for i in range(spec.n_layers):
        p = f"layers.{i}."
        if umup:
            ta, tm = c.taus[2 * i], c.taus[2 * i + 1]
            r, sk = _split(x, ta)
            x = _add(attn(norm(r, w[p + "attn_norm"]), p), sk, ta)
            r, sk = _split(x, tm)
            x = _add(mlp(norm(r, w[p + "mlp_norm"]), p), sk, tm)
        else:
            x = x + attn(norm(x, w[p + "attn_norm"]), p)
            x = x + mlp(norm(x, w[p + "mlp_norm"]), p)
    x = norm(x, w["norm"])
    wh = w["head.weight"]
    if umup:
        d = wh.shape[-1]
        wh = ops.scale_fb(wh, 1.0 / d, n**-0.5)
        x = ops.scale_fb(x, 1.0, d * vocab**-0.5)
        logits = _mul(torch.bmm(x, wh.transpose(1, 2)), c.loss)
        logits = ops.scale_fb(logits, 1.0, n * vocab / math.sqrt(max(1, vocab - 1)))
    else:
        if spec.parametrization == "mup":
            wh = wh * (spec.base_width / spec.width)
        logits = torch.bmm(x, wh.transpose(1, 2))
    ce = F.cross_entropy(logits.reshape(-1, vocab).float(), tgt.reshape(-1), reduction="none")
    return ce.view(k, n).mean(1)


def _diverged_at(hist: Tensor) -> list[int | None]:
    """First step at which each row meets :func:`train_run`'s divergence rule (or ``None``)."""
    first = hist[0].clamp(min=1.0)
    bad = ~torch.isfinite(hist)
    bad[11:] |= hist[11:] > 3 * first
    out: list[int | None] = []
    for j in range(hist.shape[1]):
        nz = torch.nonzero(bad[:, j])
        out.append(int(nz[0]) if len(nz) else None)
    return out


def train_batched(
    spec: RunSpec,
    variants: list[Variant],
    source_for: Callable[[int], Any] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``len(variants)`` copies of ``spec``'s decoder at once; one record per variant.

    Args:
        spec: architecture, budget, schedule, dtype and device shared by all rows (its ``lr``,
            ``seed`` and ``alphas`` are replaced by each :class:`Variant`'s).
        variants: K rows. Rows with the same seed see the same data and initial weights.
        source_for: ``seed -> data source`` (default: ``spec.data`` with that seed, as
            :func:`u_mup.sweep.train_run` does).
        on_step: called as ``on_step(step, steps)`` after every step (progress bars).

    Returns:
        The records :func:`u_mup.sweep.train_run` would return for each variant's spec
        (``loss``, ``val_loss``, ``diverged``, ``curve``; ``seconds`` is the shared wall time
        divided by K), plus ``"batched": K``.

    Raises:
        ValueError: no variants, FP8 or tied embeddings requested (not supported here), or an
            unknown α name.
    """
    if not variants:
        raise ValueError("variants is empty; pass at least one Variant(lr=...)")
    if spec.fp8:
        raise ValueError("train_batched does not simulate FP8; use train_run for fp8=True specs")
    specs = [replace(spec, lr=v.lr, seed=v.seed, alphas=dict(v.alphas)) for v in variants]
    configs = [UMupConfig.from_dict(dict(s.alphas)) for s in specs]
    dev = torch.device(spec.device)
    k = len(specs)
    seeds = sorted({s.seed for s in specs})
    sources = {
        sd: (source_for(sd) if source_for else _source(replace(spec, seed=sd))) for sd in seeds
    }
    vocab = sources[seeds[0]].vocab_size

    # initial weights and per-element LR factors (abc rule C) from each row's own Decoder
    inits: dict[str, tuple[Tensor, Tensor, Tensor]] = {}
    names: list[tuple[str, tuple[int, ...], int]] = []
    for s in specs:
        key = json.dumps([s.seed, s.alphas], sort_keys=True)
        if key in inits:
            continue
        model = build_model(replace(s, device="cpu"), vocab)
        groups = param_groups(model, 1.0, spec.weight_decay, "adam")
        lr_of = {n: g["lr"] for g in groups for n in g["names"]}
        wd_of = {n: g["weight_decay"] * g["lr"] for g in groups for n in g["names"]}
        named = list(model.named_parameters())
        if not names:
            names = [(n, tuple(p.shape), p.numel()) for n, p in named]
        vec = torch.cat([p.detach().float().flatten() for _, p in named])
        lrv = torch.cat([torch.full((p.numel(),), lr_of[n]) for n, p in named])
        wdv = torch.cat([torch.full((p.numel(),), wd_of[n]) for n, p in named])
        inits[key] = (vec, lrv, wdv)
        del model
    rows = [inits[json.dumps([s.seed, s.alphas], sort_keys=True)] for s in specs]
    flat = torch.stack([r[0] for r in rows]).to(dev).requires_grad_(True)
    same = all(torch.equal(r[1], rows[0][1]) and torch.equal(r[2], rows[0][2]) for r in rows)
    lr_c = torch.stack([r[1] for r in (rows[:1] if same else rows)]).to(dev)
    wd_c = torch.stack([r[2] for r in (rows[:1] if same else rows)]).to(dev)
    use_wd = bool(wd_c.any())
    eta = torch.tensor([s.lr for s in specs], dtype=torch.float32, device=dev).view(k, 1)
    m, v = torch.zeros_like(flat), torch.zeros_like(flat)
    consts = _Stack(spec, configs, dev)

    def views(t: Tensor) -> dict[str, Tensor]:
        out, off = {}, 0
        for n_, shape, numel in names:
            out[n_] = t[:, off : off + numel].view(k, *shape)
            off += numel
        return out

    # data: identical batches to train_run, per seed, moved to the device once
    steps, bsz, sl = spec.steps, spec.batch_size, spec.seq_len
    seed_ix = torch.tensor([seeds.index(s.seed) for s in specs], device=dev)

    def batches(split: str, count: int) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for sd in seeds:
            pairs = [sources[sd].batch(i, bsz, sl, split) for i in range(count)]
            xs.append(torch.stack([p[0] for p in pairs]))
            ys.append(torch.stack([p[1] for p in pairs]))
        return torch.stack(xs).to(dev), torch.stack(ys).to(dev)  # [seeds, count, B, S]

    xs, ys = batches("train", steps)
    amp = spec.dtype == "bf16"
    b1, b2, eps = 0.9, 0.95, 1e-8
    hist = torch.full((steps, k), float("nan"), device=dev)
    alive = torch.ones(k, 1, device=dev)
    t0 = time.perf_counter()
    for step in range(steps):
        f = _lr_factor(step, steps, spec.warmup)
        idx, tgt = xs[seed_ix, step], ys[seed_ix, step]
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            losses = _forward(views(flat), idx, tgt, spec, consts, vocab)
        flat.grad = None
        losses.sum().backward()
        hist[step] = losses.detach()
        with torch.no_grad():
            g = torch.nan_to_num(flat.grad, nan=0.0, posinf=0.0, neginf=0.0)
            if use_wd:
                flat.mul_(1 - f * wd_c)
            t = step + 1
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(1 - b2**t)).add_(eps)
            upd = (m / denom).mul_(lr_c).mul_(eta * (alive * (f / (1 - b1**t))))
            flat.sub_(upd)
            if step % 50 == 49 or step == steps - 1:  # freeze diverged rows (keeps NaNs out)
                div_at = _diverged_at(hist[: step + 1].cpu())
                for j in (j for j, d in enumerate(div_at) if d is not None):
                    alive[j] = 0.0
                    m[j], v[j] = 0.0, 0.0
                    flat[j] = torch.nan_to_num(flat[j].clamp(-1e4, 1e4))
        if on_step is not None:
            on_step(step, steps)
    seconds = time.perf_counter() - t0

    vx, vy = batches("val", 8)
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        w = views(flat)
        val = torch.stack(
            [_forward(w, vx[seed_ix, i], vy[seed_ix, i], spec, consts, vocab) for i in range(8)]
        ).mean(0)
    hist_c = hist.cpu()
    div = _diverged_at(hist_c)
    out = []
    for j, s in enumerate(specs):
        h = hist_c[:, j].tolist() if div[j] is None else hist_c[: div[j] + 1, j].tolist()
        tail = h[-max(1, steps // 10) :]
        every = max(1, len(h) // 50)
        vl = float(val[j])
        out.append(
            {
                "spec": asdict(s),
                "loss": None if div[j] is not None else sum(tail) / len(tail),
                "val_loss": None if div[j] is not None or not math.isfinite(vl) else vl,
                "diverged": div[j] is not None,
                "curve": [round(x, 5) if math.isfinite(x) else None for x in h[::every]],
                "seconds": round(seconds / k, 3),
                "batched": k,
            }
        )
    return out
