"""Count the kernels inductor generates for one decoder layer's forward + backward.

Unit-scaled layer vs the identical plain-torch layer, both compiled (fullgraph) under autocast
(bf16 on CUDA and CPU). Equal counts mean every scale multiply was fused into an existing
kernel (a weight cast, a norm, an activation) rather than launched on its own.
Usage: ``python kernel_count.py [--device cuda] [--width 512] [--out kernels.json]``.
"""

from __future__ import annotations

import argparse
import json
import re

import torch
from torch._inductor.utils import run_and_get_code

import unit_scaling.nn as unn
from unit_scaling.testing import SPTransformerLayer


def count(layer: torch.nn.Module, width: int, tokens: int, device: str) -> dict[str, int]:
    """Generated pointwise/reduction kernels and external GEMM/attention calls, fwd + bwd."""
    torch._dynamo.reset()
    x = torch.randn(tokens // 256, 256, width, device=device, requires_grad=True)
    f = torch.compile(lambda x: layer(x).float().square().mean(), fullgraph=True)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = f(x)
        loss.backward()

    _, codes = run_and_get_code(step)
    src = "\n".join(codes)
    fused = len(re.findall(r"^\w+ = async_compile\.(?:triton|cpp\w*)\(", src, re.M))
    extern = len(re.findall(r"extern_kernels\.\w+\(|torch\.ops\.aten\.\w+\.default\(", src))
    return {"graphs": len(codes), "fused_kernels": fused, "extern_calls": extern}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    heads = max(a.width // 64, 1)
    tau = unn.residual_taus(4)[0]
    torch.manual_seed(0)
    layers = {
        "unit_scaling": unn.TransformerLayer(a.width, heads, attn_tau=tau, mlp_tau=tau),
        "torch": SPTransformerLayer(a.width, heads),
    }
    res = {k: count(m.to(a.device), a.width, a.tokens, a.device) for k, m in layers.items()}
    res["setup"] = {"device": a.device, "width": a.width, "tokens": a.tokens, "dtype": "bf16"}
    for k in ("unit_scaling", "torch"):
        print(f"{k:13s} " + " ".join(f"{n}={v}" for n, v in res[k].items()))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
