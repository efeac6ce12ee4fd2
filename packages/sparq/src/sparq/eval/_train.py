"""CPU-friendly training of the two evaluation models (recall task and byte-level LM)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from sparq.eval._model import ModelConfig, TinyLlama

__all__ = ["load_checkpoint", "save_checkpoint", "train_lm"]

Batch = tuple[torch.Tensor, torch.Tensor]  # ids (B, T) int64, loss mask (B, T) bool on targets


def save_checkpoint(path: str | Path, model: TinyLlama, meta: dict) -> None:
    """Save fp16 weights + config + metadata (small enough to commit)."""
    state = {
        k: (v.half() if v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()
    }
    torch.save({"config": model.config.to_dict(), "state": state, "meta": meta}, str(path))


def load_checkpoint(path: str | Path) -> tuple[TinyLlama, dict]:
    """Load a checkpoint written by :func:`save_checkpoint` (weights cast back to fp32)."""
    blob = torch.load(str(path), map_location="cpu", weights_only=True)
    model = TinyLlama(ModelConfig(**blob["config"]))
    model.load_state_dict({k: v.float() for k, v in blob["state"].items()}, strict=False)
    model.eval()
    return model, blob["meta"]


def _loss(model: TinyLlama, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    logits = model(ids[:, :-1])
    m = mask[:, 1:]
    return F.cross_entropy(logits[m], ids[:, 1:][m])


def train_lm(
    model: TinyLlama,
    batches: Callable[[int], Batch],
    *,
    steps: int,
    lr: float = 3e-3,
    warmup: int = 100,
    evaluate: Callable[[TinyLlama], float] | None = None,
    eval_every: int = 200,
    stop_at: float | None = None,
    log: Callable[[str], None] = print,
    time_limit_s: float | None = None,
) -> dict:
    """AdamW with linear warm-up and cosine decay; ``batches(step)`` yields ``(ids, mask)``.

    ``mask[b, t]`` marks the targets ``ids[b, t]`` that enter the loss (predicted at ``t - 1``).
    Stops early once ``evaluate(model) >= stop_at`` or after ``time_limit_s`` seconds.
    Returns a history dict (step, loss, eval score, seconds).
    """
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    hist: dict = {"step": [], "loss": [], "eval": [], "seconds": 0.0}
    t0 = time.time()
    ema = None
    for step in range(steps):
        f = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for grp in opt.param_groups:
            grp["lr"] = lr * f
        model.train()
        ids, mask = batches(step)
        dev = next(model.parameters()).device
        ids, mask = ids.to(dev), mask.to(dev)
        loss = _loss(model, ids, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        last = step == steps - 1
        over = time_limit_s is not None and time.time() - t0 > time_limit_s
        if (step + 1) % eval_every == 0 or last or over:
            model.eval()
            score = evaluate(model) if evaluate else float("nan")
            hist["step"].append(step + 1)
            hist["loss"].append(ema)
            hist["eval"].append(score)
            log(f"step {step + 1:5d}  loss {ema:.4f}  eval {score:.4f}  {time.time() - t0:6.0f}s")
            if (stop_at is not None and score >= stop_at) or over:
                break
    hist["seconds"] = time.time() - t0
    model.eval()
    return hist
