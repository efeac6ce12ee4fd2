"""A compiled unit-scaled training step does no more work than the identical plain-torch step.

Both decoders are compiled over the same regions (embedding, one shared layer graph, final norm +
readout + loss) under bf16 autocast, as in ``benchmarks/bench_unit_scaling.py``. Every scale is a
Python float folded into the graph, so the unit-scaled step must generate no extra kernels and
dispatch no extra aten ops per step (both are host work on a GPU: launches and dispatcher calls).
"""

import collections
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._inductor.utils import run_and_get_code
from torch.profiler import ProfilerActivity, profile

import unit_scaling.functional as U
import unit_scaling.nn as unn
from unit_scaling.testing import SPTransformerLayer

VOCAB, WIDTH, LAYERS, HEADS = 64, 32, 2, 2

# dynamo reads ``.grad`` of a compiled region's non-leaf tensor input (the previous region's
# output) while building its guards; torch warns about that access itself, not about our code
pytestmark = pytest.mark.filterwarnings(
    "ignore:The .grad attribute of a Tensor that is not a leaf Tensor:UserWarning"
)


class _Decoder(nn.Module):
    def __init__(self, unit: bool) -> None:
        super().__init__()
        self.unit = unit
        if unit:
            tau = unn.residual_taus(LAYERS)[0]  # one τ: the layers share one compiled graph
            self.embedding = unn.Embedding(VOCAB, WIDTH)
            self.layers = nn.ModuleList(
                unn.TransformerLayer(WIDTH, HEADS, attn_tau=tau, mlp_tau=tau) for _ in range(LAYERS)
            )
            self.norm, self.head = unn.RMSNorm(WIDTH), unn.LinearReadout(WIDTH, VOCAB)
        else:
            self.embedding = nn.Embedding(VOCAB, WIDTH)
            self.layers = nn.ModuleList(SPTransformerLayer(WIDTH, HEADS) for _ in range(LAYERS))
            self.norm, self.head = nn.RMSNorm(WIDTH), nn.Linear(WIDTH, VOCAB, bias=False)
        self._embed = torch.compile(_embed, dynamic=False, fullgraph=True)
        self._layer = torch.compile(_layer, dynamic=False, fullgraph=True)
        self._loss = torch.compile(_loss, dynamic=False, fullgraph=True)

    def forward(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self._embed(self.embedding, ids)
        for layer in self.layers:
            x = self._layer(layer, x)
        return self._loss(self, x, labels)


def _embed(embedding, ids):
    return embedding(ids)


def _layer(layer, x):
    return layer(x)


def _loss(model, x, labels):
    logits = model.head(model.norm(x)).flatten(0, 1).float()
    return (U.cross_entropy if model.unit else F.cross_entropy)(logits, labels.flatten())


def _work(unit: bool) -> tuple[dict[str, int], dict[str, float]]:
    """(generated kernels / external calls of all compiled graphs, aten ops per step)."""
    torch.manual_seed(0)
    model = _Decoder(unit)
    ids = torch.randint(0, VOCAB, (1, 17))
    inp, labels = ids[:, :-1], ids[:, 1:]

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(inp, labels)
        loss.backward()

    _, codes = run_and_get_code(step)  # first step compiles: collect the generated code
    src = "\n".join(codes)
    kernels = {
        "graphs": len(codes),
        "fused": len(re.findall(r"^\w+ = async_compile\.(?:triton|cpp\w*)\(", src, re.M)),
        "extern": len(re.findall(r"extern_kernels\.\w+\(|torch\.ops\.aten\.\w+\.default\(", src)),
    }
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            step()
    names = collections.Counter(e.name for e in prof.events())
    ops = {
        "aten_ops": sum(v for k, v in names.items() if k.startswith("aten::")) / 2,
        "compiled_calls": sum(v for k, v in names.items() if k.startswith("Torch-Compiled")) / 2,
        "autograd_nodes": sum(v for k, v in names.items() if k.startswith("autograd::engine")) / 2,
    }
    return kernels, ops


@pytest.mark.slow
def test_compiled_step_does_no_more_work_than_plain_torch():
    torch._dynamo.reset()
    unit_kernels, unit_ops = _work(True)
    plain_kernels, plain_ops = _work(False)
    # 3 regions, forward and backward each: the layer graph is shared by both layers
    assert unit_kernels["graphs"] == plain_kernels["graphs"] == 6
    assert unit_ops["compiled_calls"] == plain_ops["compiled_calls"] == 2 + LAYERS
    print("unit-scaled", unit_kernels, unit_ops, "plain", plain_kernels, plain_ops)
    assert plain_kernels["fused"] > 0  # the counts found the generated code
    assert plain_kernels["extern"] > 0
    assert plain_ops["aten_ops"] > 0
    assert unit_kernels["fused"] <= plain_kernels["fused"], (unit_kernels, plain_kernels)
    assert unit_kernels["extern"] <= plain_kernels["extern"], (unit_kernels, plain_kernels)
    assert unit_ops["aten_ops"] <= plain_ops["aten_ops"], (unit_ops, plain_ops)
    assert unit_ops["autograd_nodes"] <= plain_ops["autograd_nodes"], (unit_ops, plain_ops)
