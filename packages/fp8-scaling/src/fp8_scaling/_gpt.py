"""A small GPT and an embedded byte-level corpus for convergence experiments (no downloads)."""

from __future__ import annotations

import contextlib
import math
import os
import sysconfig
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GPT", "GPTConfig", "graph_forward_backward", "stdlib_corpus", "train_steps"]


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of :class:`GPT` (byte vocabulary of 256 by default)."""

    n_layer: int = 2
    d_model: int = 64
    n_head: int = 4
    seq_len: int = 64
    vocab: int = 256
    mlp_ratio: int = 4


class _Block(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.ln1 = nn.LayerNorm(c.d_model)
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_model)
        self.ln2 = nn.LayerNorm(c.d_model)
        self.fc1 = nn.Linear(c.d_model, c.mlp_ratio * c.d_model)
        self.fc2 = nn.Linear(c.mlp_ratio * c.d_model, c.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class GPT(nn.Module):
    """Decoder-only transformer; ``forward(idx (B, T) int64) -> logits (B, T, vocab)``.

    The token embedding and the output head (``lm_head``) stay in high precision when converted
    with :func:`fp8_scaling.convert_to_float8` (its default ``skip``).
    """

    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.config = c
        self.embed = nn.Embedding(c.vocab, c.d_model)
        self.pos_embed = nn.Parameter(torch.zeros(c.seq_len, c.d_model))
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.d_model)
        self.lm_head = nn.Linear(c.d_model, c.vocab, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = (
                    0.02 / math.sqrt(2 * c.n_layer)
                    if name.endswith(("proj.weight", "fc2.weight"))
                    else 0.02
                )
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx) + self.pos_embed[: idx.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.lm_head(self.ln_f(x))


def stdlib_corpus(n_bytes: int = 2_000_000) -> torch.Tensor:
    """The first ``n_bytes`` of the Python standard library's ``.py`` sources, as uint8 (N,).

    Deterministic for a given Python installation; no download. Files are read in sorted order.
    """
    root = sysconfig.get_paths()["stdlib"]
    chunks, total = [], 0
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in ("site-packages", "test", "tests", "idlelib")
        )
        for fn in sorted(files):
            if fn.endswith(".py"):
                try:
                    with open(os.path.join(dirpath, fn), "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                chunks.append(data)
                total += len(data)
                if total >= n_bytes:
                    return torch.frombuffer(
                        bytearray(b"".join(chunks)[:n_bytes]), dtype=torch.uint8
                    )
    if total == 0:
        raise RuntimeError(f"no Python sources found under {root}")
    return torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.uint8)


def _batch(
    data: torch.Tensor, b: int, t: int, gen: torch.Generator, device
) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.randint(0, data.numel() - t - 1, (b,), generator=gen)
    x = torch.stack([data[i : i + t] for i in ix.tolist()]).long()
    y = torch.stack([data[i + 1 : i + t + 1] for i in ix.tolist()]).long()
    if torch.device(device).type == "cuda":  # pinned + async: the copy does not wait for the GPU
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(
            device, non_blocking=True
        )
    return x.to(device), y.to(device)


class _Forward(nn.Module):
    """Holds ``model`` so that graph capture replaces this wrapper's ``forward``, not the model's.

    The model itself stays an ordinary eager module (used on telemetry steps, where hooks must
    run, and by anything else holding a reference to it).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)


def _graph_capable(device: torch.device) -> bool:
    return device.type == "cuda" and hasattr(torch.cuda, "make_graphed_callables")


_QUIET_DEPTH = [0]


@contextlib.contextmanager
def _quiet_grad_stream_mismatch():
    """Silence torch's AccumulateGrad stream-mismatch warning (torch >= 2.10) for the block.

    ``torch.cuda.make_graphed_callables`` warms up and captures on a side stream, and the graphed
    module keeps the captured autograd graph alive, with the parameters' AccumulateGrad nodes
    created there: the capture's and every later backward then hand the parameter gradients
    from one stream to another. That costs one event wait and, since the nodes' stream is not
    the default stream, does not break capture (the GPT runs capture with it); but the warning
    (an error under ``-W error``) made a strict caller give up the graphs. The switch is
    process-global without a getter: it is turned back on (torch's default) when the outermost
    block ends.
    """
    setter = getattr(torch._C, "_set_warn_on_accumulate_grad_stream_mismatch", None)
    if setter is None:  # older torch: no such warning
        yield
        return
    _QUIET_DEPTH[0] += 1
    setter(False)
    try:
        yield
    finally:
        _QUIET_DEPTH[0] -= 1
        if _QUIET_DEPTH[0] == 0:
            setter(True)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    # no autocast weight cache: CUDA-graph capture does not support it (and the FP8 layers cast
    # their weights themselves); the eager and the graphed steps then run the same kernels
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None, cache_enabled=False)


def graph_forward_backward(
    model: nn.Module,
    sample: torch.Tensor,
    autocast_dtype: torch.dtype | None = None,
    recorder=None,
    warmup: int = 3,
) -> nn.Module:
    """Capture ``model``'s forward and backward for inputs shaped like ``sample`` in CUDA graphs.

    Returns a module with ``model``'s parameters whose calls replay the captured kernels (no
    Python or kernel-launch overhead per layer: the FP8 layers' amax, cast and GEMM launches
    cost nothing on the host). ``model`` itself is not modified and stays callable eagerly.
    Uses ``torch.cuda.make_graphed_callables``: the warm-up iterations it runs before capturing
    (Triton autotuning, cuBLAS setup) would push amaxes into the delayed recipe's histories, so
    every buffer is restored afterwards; ``recorder`` (a :class:`ScaleRecorder`) is paused
    during warm-up and capture. Call the result under the same autocast as here, with
    ``cache_enabled=False``.

    Args:
        model: module mapping ``sample`` (e.g. (B, T) int64 token ids) to one tensor.
        sample: a real input batch on the model's CUDA device (its shape and dtype are fixed).
        autocast_dtype: autocast dtype used for capture and replay (None: no autocast).
        recorder: optional recorder to pause while capturing.
        warmup: warm-up iterations before capture.
    """
    state = [(b, b.detach().clone()) for b in model.buffers()]
    wrapper = _Forward(model)
    pause = recorder.paused() if recorder is not None else contextlib.nullcontext()
    try:
        with pause, _autocast(sample.device, autocast_dtype), _quiet_grad_stream_mismatch():
            return torch.cuda.make_graphed_callables(wrapper, (sample,), num_warmup_iters=warmup)
    finally:
        with torch.no_grad():
            for b, saved in state:
                b.copy_(saved)


def train_steps(
    model: nn.Module,
    data: torch.Tensor,
    steps: int,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
    callback=None,
    val_data: torch.Tensor | None = None,
    val_every: int = 0,
    progress=None,
    deadline: float | None = None,
    cuda_graph: bool = False,
    recorder=None,
) -> dict[str, list[float]]:
    """Train ``model`` with AdamW (cosine decay) on random windows of ``data``; returns losses.

    ``deadline`` (a ``time.monotonic()`` value) stops the loop early (after a validation).
    ``cuda_graph`` (CUDA only) replays the forward and backward from CUDA graphs captured once
    (:func:`graph_forward_backward`); the loss, gradient clipping and the optimizer step stay
    eager. ``recorder`` (a :class:`ScaleRecorder`) is stepped once per step; the steps it
    records run eagerly so its hooks see the tensors (validation is not recorded). Returns
    ``{"train": [...], "val": [...], "val_steps": [...], "cuda_graph": bool}`` (nats per byte).
    """
    gen = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    on_cuda = device.type == "cuda"
    opt = torch.optim.AdamW(  # fused on CUDA: one kernel per step instead of several per tensor
        model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.95), fused=on_cuda or None
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / max(steps, 1)))
    )
    t = model.config.seq_len if hasattr(model, "config") else 64
    out: dict = {"train": [], "val": [], "val_steps": [], "cuda_graph": False}
    pending: list[torch.Tensor] = []  # losses still on the device (read in batches: no sync)
    last = float("nan")
    graphed = None
    # graphed steps hand parameter gradients across streams (see _quiet_grad_stream_mismatch)
    graph_on = cuda_graph and _graph_capable(device)
    with _quiet_grad_stream_mismatch() if graph_on else contextlib.nullcontext():
        for step in range(steps):
            x, y = _batch(data, batch_size, t, gen, device)
            if cuda_graph and graphed is None and _graph_capable(device):
                try:
                    graphed = graph_forward_backward(model, x, autocast_dtype, recorder)
                    out["cuda_graph"] = True
                except Exception as e:  # keep training eagerly rather than lose the run
                    warnings.warn(
                        f"CUDA-graph capture failed, training eagerly: {e!r}", stacklevel=2
                    )
                    out["cuda_graph_error"] = repr(e)
                    torch.cuda.synchronize()
                cuda_graph = False  # one attempt
            eager = graphed is None or (recorder is not None and recorder.active)
            with _autocast(device, autocast_dtype):
                logits = model(x) if eager else graphed(x)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            pending.append(loss.detach())
            if recorder is not None:
                recorder.step()
            if callback is not None:
                callback(step)
            late = deadline is not None and time.monotonic() > deadline
            do_val = (
                val_data is not None and val_every and (step % val_every == 0 or step == steps - 1)
            )
            do_val = do_val or (late and val_data is not None)
            if do_val or late or len(pending) >= 50 or step == steps - 1 or not on_cuda:
                out["train"] += torch.stack(pending).float().tolist()
                pending.clear()
                last = out["train"][-1]
            if do_val:
                fwd = graphed if graphed is not None else model
                with recorder.paused() if recorder is not None else contextlib.nullcontext():
                    v = evaluate(fwd, val_data, batch_size, device, autocast_dtype, seq_len=t)
                out["val"].append(v)
                out["val_steps"].append(step)
            if progress is not None:
                progress(step, last)
            if late:
                break
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: torch.Tensor,
    batch_size: int = 16,
    device="cpu",
    autocast_dtype: torch.dtype | None = None,
    n_batches: int = 4,
    seed: int = 1234,
    seq_len: int | None = None,
) -> float:
    """Mean cross-entropy (nats/byte) over ``n_batches`` fixed random windows of ``data``.

    ``model`` may be the graphed forward of :func:`graph_forward_backward` (then ``seq_len``
    and ``batch_size`` must be the captured ones).
    """
    gen = torch.Generator().manual_seed(seed)
    t = seq_len or (model.config.seq_len if hasattr(model, "config") else 64)
    tot = 0.0
    for _ in range(n_batches):
        x, y = _batch(data, batch_size, t, gen, device)
        with _autocast(torch.device(device), autocast_dtype):
            logits = model(x)
        tot += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
    return tot / n_batches
