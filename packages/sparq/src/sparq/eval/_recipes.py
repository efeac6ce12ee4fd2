"""Training recipes for the two committed evaluation models (CPU, a few minutes each)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sparq.eval._model import ModelConfig, TinyLlama
from sparq.eval._tasks import RecallTask, stdlib_bytes
from sparq.eval._train import train_lm

__all__ = ["RECALL_MODEL", "RECALL_TASK", "recall_accuracy", "train_byte_lm", "train_recall"]

#: The recall task the committed checkpoint was trained and is evaluated on.
RECALL_TASK = RecallTask(n_keys=32, n_values=32, n_filler=16, n_pairs=16, n_queries=8, seq_len=128)
#: 4-layer Llama-style model, GQA (2 query heads per KV head), head_dim 64.
RECALL_MODEL = ModelConfig(
    vocab=RECALL_TASK.vocab, d_model=64, n_layers=4, n_heads=2, n_kv_heads=1, head_dim=64,
    d_ff=128, max_len=256,
)  # fmt: skip


def _copy_batch(
    task: RecallTask, batch: int, g: torch.Generator, max_fill: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeated random segment (dense induction signal): BOS seg filler SEP seg, loss on 2nd seg."""
    L = 2 * task.n_pairs
    seg = torch.randint(task.n_keys + task.n_values, (batch, L), generator=g)
    f0 = task.n_keys + task.n_values
    hi = min(max_fill, task.seq_len - 2 * L - 2)
    n_fill = int(torch.randint(0, hi + 1, (1,), generator=g))
    fill = torch.randint(task.n_filler, (batch, n_fill), generator=g) + f0
    bos = torch.full((batch, 1), f0 + task.n_filler)
    sep = torch.full((batch, 1), f0 + task.n_filler + 1)
    ids = torch.cat([bos, seg, fill, sep, seg], 1)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, -L + 1 :] = True
    return ids, mask


def recall_accuracy(model: TinyLlama, ids: torch.Tensor, mask: torch.Tensor, attn=None) -> float:
    """Fraction of answers predicted correctly (argmax at the query positions)."""
    dev = next(model.parameters()).device
    ids, mask = ids.to(dev), mask.to(dev)
    with torch.no_grad():
        pred = model(ids[:, :-1], attn=attn).argmax(-1)
    m = mask[:, 1:]
    return (pred[m] == ids[:, 1:][m]).float().mean().item()


def train_recall(
    steps: int = 2000, batch: int = 32, seed: int = 0, lr: float = 3e-3, device: str = "cpu",
    log: Callable[[str], None] = print,
    time_limit_s: float | None = None,
    init: TinyLlama | None = None,
    curriculum: bool = True,
) -> tuple[TinyLlama, dict]:  # fmt: skip
    """Train the recall model: MQAR batches mixed with copy batches (faster induction heads).

    ``init`` continues from an existing model; ``curriculum=False`` uses full-length filler.
    """
    torch.manual_seed(seed)
    task = RECALL_TASK
    model = (init if init is not None else TinyLlama(RECALL_MODEL)).to(device)
    g = torch.Generator().manual_seed(seed + 1)
    full = task.prompt_len - 2 - 2 * task.n_pairs

    def batches(step: int):
        # curriculum: mostly short filler early (cheap steps, fast induction), full length later
        short = max(8, int(full * min(1.0, step / (0.6 * steps)))) if curriculum else full
        if step % 3 == 0:
            return _copy_batch(task, batch, g, max_fill=short)
        n = int(torch.randint(0, short + 1, (1,), generator=g)) if step % 3 == 1 else short
        return task.sample(batch, g, n_fill=n)

    ev = task.sample(256, torch.Generator().manual_seed(12345))
    hist = train_lm(
        model, batches, steps=steps, lr=lr, warmup=100,
        evaluate=lambda m: recall_accuracy(m, *ev),
        eval_every=50, stop_at=0.995, log=log, time_limit_s=time_limit_s,
    )  # fmt: skip
    return model, {"kind": "recall", "task": task.to_dict(), "history": hist}


def train_byte_lm(
    steps: int = 1500, batch: int = 16, seq_len: int = 256, seed: int = 0, device: str = "cpu",
    log: Callable[[str], None] = print, time_limit_s: float | None = None,
) -> tuple[TinyLlama, dict]:  # fmt: skip
    """Train a byte-level LM on the stdlib sources (first 90 % train, last 10 % held out)."""
    torch.manual_seed(seed)
    data = torch.frombuffer(bytearray(stdlib_bytes(2_000_000)), dtype=torch.uint8).long()
    split = int(0.9 * len(data))
    train, held = data[:split], data[split:]
    cfg = ModelConfig(vocab=256, d_model=96, n_layers=4, n_heads=4, n_kv_heads=2, head_dim=32,
                      d_ff=256, max_len=seq_len)  # fmt: skip
    model = TinyLlama(cfg).to(device)
    g = torch.Generator().manual_seed(seed + 1)

    def batches(step: int):
        starts = torch.randint(0, len(train) - seq_len - 1, (batch,), generator=g)
        ids = torch.stack([train[s : s + seq_len] for s in starts.tolist()])
        return ids, torch.ones_like(ids, dtype=torch.bool)

    ev_starts = torch.arange(0, 64) * ((len(held) - seq_len - 1) // 64)
    ev = torch.stack([held[s : s + seq_len] for s in ev_starts.tolist()]).to(device)

    def evaluate(m: TinyLlama) -> float:
        with torch.no_grad():
            lo = m(ev[:, :-1])
            nll = torch.nn.functional.cross_entropy(lo.reshape(-1, 256), ev[:, 1:].reshape(-1))
        return -nll.item() / 0.6931471805599453  # negative bits per byte (higher is better)

    hist = train_lm(
        model, batches, steps=steps, lr=2e-3, warmup=100, evaluate=evaluate, eval_every=100,
        log=log, time_limit_s=time_limit_s,
    )  # fmt: skip
    return model, {"kind": "byte_lm", "seq_len": seq_len, "history": hist, "split": 0.9,
                   "corpus_bytes": len(data)}  # fmt: skip
