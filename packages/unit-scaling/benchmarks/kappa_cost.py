"""Cost of the decoder's pair-coherence κ: κ alone vs a compiled decoder training step.

Times ``pair_coherence`` on a 16×1024 batch (eager, one thread) and compiles the full
``TransformerDecoder`` step (forward + loss + backward, fullgraph) with ``pair_grad_scale`` on
and off, counting the kernels inductor generates for each.
Usage: ``python kappa_cost.py [--width 64] [--layers 2]`` (compiling both takes minutes on CPU).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

import torch
from torch._inductor.utils import run_and_get_code

import unit_scaling.nn as unn


def _ms(f: Callable[[], object], n: int) -> float:
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(1)
    ids = torch.randint(0, 256, (16, 1025))
    inp, lab = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    t_kappa = _ms(lambda: unn.pair_coherence(inp, lab), 20)
    print(f"kappa alone, 16x1024 tokens, eager: {t_kappa:.2f} ms")
    x = torch.randint(0, 256, (4, 65))
    for on in (True, False):
        torch._dynamo.reset()
        torch.manual_seed(0)
        heads = max(a.width // 64, 1)
        m = unn.TransformerDecoder(256, a.width, a.layers, heads, pair_grad_scale=on)
        f = torch.compile(lambda x, m=m: m.loss(x), fullgraph=True)

        def step(m: torch.nn.Module = m, f: Callable = f) -> None:  # type: ignore[type-arg]
            m.zero_grad(set_to_none=True)
            f(x).backward()

        _, codes = run_and_get_code(step)
        src = "\n".join(codes)
        fused = len(re.findall(r"^\w+ = async_compile\.(?:triton|cpp\w*)\(", src, re.M))
        ext = len(re.findall(r"extern_kernels\.\w+\(|torch\.ops\.aten\.\w+\.default\(", src))
        print(
            f"pair_grad_scale={on}: graphs={len(codes)} fused={fused} extern={ext} "
            f"step {_ms(step, 10):.2f} ms"
        )


if __name__ == "__main__":
    main()
