"""One training run of the reference decoder: the unit of every sweep."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from ._config import UMupConfig
from ._fp8 import FP8Sim
from ._optim import param_groups
from .models import Decoder, DecoderConfig

__all__ = ["RunSpec", "build_model", "train_run"]

_SOURCES: dict[tuple[str, int], Any] = {}


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run (and its key in a sweep store).

    Attributes:
        parametrization: ``umup``/``mup``/``sp``. width, n_layers, head_dim: architecture.
        lr: global η. seed: init *and* data-order seed. steps, batch_size, seq_len: budget.
        data: ``"stdlib"``, ``"markov"`` or a text-file path. weight_decay: λ (independent).
        warmup: warmup fraction (linear), then cosine to 10 %. alphas: :class:`UMupConfig`
        fields that differ from the defaults. fp8: simulated FP8 linears. dtype: ``fp32``/``bf16``
        (autocast). device: torch device. base_width: μP base width.
    """

    parametrization: str = "umup"
    width: int = 128
    n_layers: int = 2
    lr: float = 1.0
    seed: int = 0
    steps: int = 300
    batch_size: int = 16
    seq_len: int = 64
    head_dim: int = 16
    data: str = "stdlib"
    weight_decay: float = 0.0
    warmup: float = 0.1
    alphas: dict[str, Any] = field(default_factory=dict)
    fp8: bool = False
    dtype: str = "fp32"
    device: str = "cpu"
    base_width: int = 128

    def key(self) -> str:
        """Stable identity string (the device is not part of it)."""
        d = asdict(self)
        d.pop("device")
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _source(spec: RunSpec):
    from ._data import make_source

    k = (spec.data, spec.seed)
    if k not in _SOURCES:
        _SOURCES[k] = make_source(spec.data, seed=spec.seed)
    return _SOURCES[k]


def build_model(spec: RunSpec, vocab_size: int = 256) -> Decoder:
    """The :class:`Decoder` for ``spec`` (on ``spec.device``)."""
    cfg = DecoderConfig(
        vocab_size=vocab_size,
        width=spec.width,
        n_layers=spec.n_layers,
        head_dim=spec.head_dim,
        parametrization=spec.parametrization,
        base_width=spec.base_width,
    )
    return Decoder(cfg, UMupConfig.from_dict(dict(spec.alphas)), seed=spec.seed).to(spec.device)


def _lr_factor(step: int, steps: int, warmup: float) -> float:
    w = max(1, int(warmup * steps))
    if step < w:
        return (step + 1) / w
    t = (step - w) / max(1, steps - w)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))


def train_run(spec: RunSpec, source=None, on_step=None) -> dict[str, Any]:
    """Train one model and return its metrics.

    Returns a JSON-safe dict: ``spec`` (dict), ``loss`` (mean training loss over the last 10 % of
    steps, nats/token; ``None`` if diverged), ``val_loss`` (8 fixed validation batches),
    ``diverged``, ``curve`` (≈50 points of the training loss), ``seconds`` and, with FP8,
    ``flush_to_zero`` (fraction of nonzero linear inputs/gradients rounded to 0).
    """
    source = source or _source(spec)
    dev = torch.device(spec.device)
    model = build_model(spec, source.vocab_size)
    if spec.fp8:
        model.fp8 = FP8Sim(track=True)
    opt = torch.optim.AdamW(
        param_groups(model, spec.lr, spec.weight_decay, "adam"),
        lr=spec.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    base = [g["lr"] for g in opt.param_groups]
    amp = spec.dtype == "bf16"
    t0 = time.perf_counter()
    losses: list[float] = []
    diverged = False
    for step in range(spec.steps):
        f = _lr_factor(step, spec.steps, spec.warmup)
        for g, b in zip(opt.param_groups, base):
            g["lr"] = b * f
        x, y = source.batch(step, spec.batch_size, spec.seq_len)
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = float(loss.detach())
        losses.append(lv)
        if on_step is not None:
            on_step(step, lv)
        if not math.isfinite(lv) or (step > 10 and lv > 3 * max(losses[0], 1.0)):
            diverged = True
            break
    seconds = time.perf_counter() - t0
    tail = losses[-max(1, spec.steps // 10) :]
    val = None
    if not diverged:
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            vs = []
            for i in range(8):
                x, y = source.batch(i, spec.batch_size, spec.seq_len, "val")
                vs.append(float(model.loss(x.to(dev), y.to(dev))))
        val = sum(vs) / len(vs)
    every = max(1, len(losses) // 50)
    out: dict[str, Any] = {
        "spec": asdict(spec),
        "loss": None if diverged else sum(tail) / len(tail),
        "val_loss": val if val is None or math.isfinite(val) else None,
        "diverged": diverged,
        "curve": [round(v, 5) if math.isfinite(v) else None for v in losses[::every]],
        "seconds": round(seconds, 3),
    }
    if spec.fp8 and model.fp8 is not None:
        out["flush_to_zero"] = model.fp8.flush_fraction()
    return out
