"""Training-step benchmark: unit-scaled 4-layer decoder vs the identical plain-torch decoder.

One step = zero_grad + forward (bf16 autocast on CUDA) + next-token cross-entropy + backward +
AdamW step (fused on CUDA, foreach on CPU; the same optimizer for both models).
"compiled": the whole forward is compiled (``dynamic=False``) in both models, as three regions of
the same boundaries: embedding, one decoder layer (the four layers of a model share that graph),
and final norm + readout + loss. Graph breaks are counted per model (``extra``; 0 expected; not
``fullgraph=True``, so that a break on another torch version degrades the number instead of
failing the run). ``UNIT_SCALING_BENCH_COMPILE=full`` compiles the forward as one graph
instead (slower to compile: the four layers are traced separately);
``UNIT_SCALING_BENCH_INDUCTOR_MODE`` (e.g. ``reduce-overhead``: CUDA graphs) is passed to
``torch.compile(mode=...)`` for both models.
The unit-scaled layers all use the first layer's residual τ so that they share one graph (τ
values are scalar constants and do not change the kernels). Set ``UNIT_SCALING_BENCH_SMOKE=1``
for tiny CUDA sizes (script testing).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from monobench import Measure, case
from torch import nn
from torch._dynamo.utils import counters

import unit_scaling.functional as U
import unit_scaling.nn as unn
from unit_scaling.testing import SPTransformerLayer

VOCAB, LAYERS, HEAD = 256, 4, 64
SMOKE = os.environ.get("UNIT_SCALING_BENCH_SMOKE") == "1"
REPEATS = int(os.environ.get("UNIT_SCALING_BENCH_REPEATS", "0"))  # 0: 50 on CUDA, 5 on CPU
COMPILE_MODE = os.environ.get("UNIT_SCALING_BENCH_COMPILE", "regions")  # or "full"
INDUCTOR_MODE = os.environ.get("UNIT_SCALING_BENCH_INDUCTOR_MODE") or None  # e.g. reduce-overhead
if COMPILE_MODE not in ("regions", "full"):
    raise ValueError(
        f"UNIT_SCALING_BENCH_COMPILE must be 'regions' or 'full', got {COMPILE_MODE!r}"
    )


class _Decoder(nn.Module):
    def __init__(self, width: int, unit: bool, compiled: bool) -> None:
        super().__init__()
        heads = max(width // HEAD, 1)
        self.unit = unit
        if unit:
            tau = unn.residual_taus(LAYERS)[0]
            self.embedding = unn.Embedding(VOCAB, width)
            self.layers = nn.ModuleList(
                unn.TransformerLayer(width, heads, attn_tau=tau, mlp_tau=tau) for _ in range(LAYERS)
            )
            self.norm, self.head = unn.RMSNorm(width), unn.LinearReadout(width, VOCAB)
        else:
            self.embedding = nn.Embedding(VOCAB, width)
            self.layers = nn.ModuleList(SPTransformerLayer(width, heads) for _ in range(LAYERS))
            self.norm, self.head = nn.RMSNorm(width), nn.Linear(width, VOCAB, bias=False)
        self.compiled = compiled
        if compiled and COMPILE_MODE != "full":  # the same three regions in both models
            self._embed = torch.compile(_embed, dynamic=False, mode=INDUCTOR_MODE)
            self._layer = torch.compile(_apply, dynamic=False, mode=INDUCTOR_MODE)
            self._loss = torch.compile(_head_loss, dynamic=False, mode=INDUCTOR_MODE)
        else:
            self._embed, self._layer, self._loss = _embed, _apply, _head_loss

    def forward(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self._embed(self.embedding, ids)
        for layer in self.layers:
            x = self._layer(layer, x)
        return self._loss(self, x, labels)


def _embed(embedding: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return embedding(ids)


def _apply(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return layer(x)


def _head_loss(model: _Decoder, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = model.head(model.norm(x)).flatten(0, 1).float()
    ce = U.cross_entropy if model.unit else F.cross_entropy
    return ce(logits, labels.flatten())


def _setup(width: int, batch: int, seq: int, device: str, unit: bool, compiled: bool):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = _Decoder(width, unit, compiled).to(device)
    if compiled and COMPILE_MODE == "full":
        model.forward = torch.compile(model.forward, dynamic=False, mode=INDUCTOR_MODE)  # type: ignore[method-assign]
    cuda = device == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda, foreach=not cuda)
    ids = torch.randint(0, VOCAB, (batch, seq + 1), device=device)
    inp, labels = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype, enabled=device == "cuda"):
            loss = model(inp, labels)
        loss.backward()
        opt.step()
        return loss

    return model, step


def _flops(width: int, batch: int, seq: int) -> float:
    tokens = batch * seq
    layer_params = 16 * width * width  # qkv 3d², out d², SwiGLU 3·4d²
    attn = 4 * batch * seq * seq * width / 2  # causal QKᵀ and PV, half the square
    return 3 * (2 * tokens * (LAYERS * layer_params + width * VOCAB) + LAYERS * attn)


def _measure(width: int, batch: int, seq: int, device: str, compiled: bool) -> Measure:
    _, ours = _setup(width, batch, seq, device, True, compiled)
    _, plain = _setup(width, batch, seq, device, False, compiled)

    extra: dict[str, object] = {
        "tokens": batch * seq,
        "layers": LAYERS,
        "vocab": VOCAB,
        "compiled": compiled,
        "compile_mode": COMPILE_MODE if compiled else None,
    }

    def check() -> None:
        # correctness before timing: both models train (finite loss) and the unit-scaled loss at
        # init is ln(V) ± 10 % (uniform prediction), as the plain model's is; the first step
        # compiles, so it also counts each model's graph breaks
        for name, fn in (("unit_scaling", ours), ("torch", plain)):
            before = sum(counters["graph_break"].values())
            loss = float(fn().detach())
            extra[f"graph_breaks_{name}"] = sum(counters["graph_break"].values()) - before
            if not abs(loss - float(torch.log(torch.tensor(VOCAB)))) < 0.1 * 5.55:
                raise AssertionError(f"{name}: first-step loss {loss:.3f} is not ≈ ln(V)")

    return Measure(
        candidate=ours,
        baseline=plain,
        candidate_label="unit_scaling",
        baseline_label="torch",
        flops=_flops(width, batch, seq),
        peak_flops=989e12 if device == "cuda" else None,
        warmup=5 if device == "cuda" else 2,
        repeats=REPEATS or (50 if device == "cuda" else 5),
        check=check,
        extra=extra,
    )


_CUDA_ALL = [
    {"width": 512, "batch": 16, "seq": 1024},
    {"width": 1024, "batch": 16, "seq": 1024},
    {"width": 2048, "batch": 8, "seq": 1024},
]
_CUDA_WIDE = [{"width": 4096, "batch": 4, "seq": 1024}]  # only when named in the variable below
_WIDTHS = os.environ.get("UNIT_SCALING_BENCH_WIDTHS")  # e.g. "512,2048" to shorten a run
_CUDA = (
    [{"width": 128, "batch": 2, "seq": 64}]
    if SMOKE
    else [p for p in _CUDA_ALL if not _WIDTHS or str(p["width"]) in _WIDTHS.split(",")]
    + [p for p in _CUDA_WIDE if _WIDTHS and str(p["width"]) in _WIDTHS.split(",")]
)
_CPU = [{"width": 64, "batch": 4, "seq": 64}]


@case("decoder_train_step_compiled", params=_CUDA, quick_params=_CUDA[:1], devices=("cuda",))
def bench_compiled_cuda(width: int, batch: int, seq: int, device: str) -> Measure:
    """4-layer decoder training step (bf16 autocast, AdamW), compiled layers: US vs plain torch."""
    return _measure(width, batch, seq, device, compiled=True)


@case("decoder_train_step_eager", params=_CUDA, quick_params=_CUDA[:1], devices=("cuda",))
def bench_eager_cuda(width: int, batch: int, seq: int, device: str) -> Measure:
    """4-layer decoder training step, eager: unit-scaled vs plain torch (overhead reported)."""
    return _measure(width, batch, seq, device, compiled=False)


@case("decoder_train_step_eager_cpu", params=_CPU, devices=("cpu",))
def bench_eager_cpu(width: int, batch: int, seq: int, device: str) -> Measure:
    """4-layer decoder training step on CPU, eager (fp32): unit-scaled vs plain torch."""
    return _measure(width, batch, seq, device, compiled=False)


@case("decoder_train_step_compiled_cpu", params=_CPU, devices=("cpu",))
def bench_compiled_cpu(width: int, batch: int, seq: int, device: str) -> Measure:
    """4-layer decoder training step on CPU, compiled layers (fp32)."""
    return _measure(width, batch, seq, device, compiled=True)
