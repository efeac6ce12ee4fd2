"""Demo: unit-scaled vs standard-parametrization 4-layer decoder, tensor scales at init."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from . import functional as U
from ._analysis import scale_report
from ._reference import SPTransformerDecoder
from ._transformer import TransformerDecoder
from .testing import stdlib_bytes

WIDTHS = (64, 128)
VOCAB, LAYERS, BATCH, SEQ = 256, 4, 8, 64


def _next_token(loss):  # type: ignore[no-untyped-def]
    return lambda logits, ids: loss(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


def run() -> dict:
    """Compare the fraction of tensors with RMS in [1/2, 2] and outside [1/8, 8] at init."""
    t0 = time.perf_counter()
    torch.manual_seed(0)
    ids = stdlib_bytes(BATCH, SEQ)  # natural text: bytes of Python stdlib sources
    print(f"4-layer decoder, bytes of stdlib sources, batch {BATCH}x{SEQ}: RMS of every "
          "activation, activation grad, weight and weight grad after one step")  # fmt: skip
    print(f"{'width':>6} {'model':>14} {'tensors':>8} {'in [1/2,2]':>11} {'out [1/8,8]':>12}")
    ok = True
    parts = []
    for width in WIDTHS:
        heads = max(width // 64, 1)
        us = scale_report(
            TransformerDecoder(VOCAB, width, LAYERS, heads), ids, _next_token(U.cross_entropy)
        )
        sp = scale_report(
            SPTransformerDecoder(VOCAB, width, LAYERS, heads), ids, _next_token(F.cross_entropy)
        )
        for name, rep in (("unit-scaled", us), ("standard (SP)", sp)):
            inside, out = rep.fraction_within(0.5, 2.0), 1 - rep.fraction_within(1 / 8, 8)
            print(f"{width:>6} {name:>14} {len(rep):>8} {inside:>11.1%} {out:>12.1%}")
        us_in, sp_out = us.fraction_within(0.5, 2.0), 1 - sp.fraction_within(1 / 8, 8)
        ok = ok and us_in >= 0.95 and sp_out >= 0.20
        parts.append(f"w{width}: US {us_in:.0%} in [1/2,2], SP {sp_out:.0%} outside [1/8,8]")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return {"summary": "; ".join(parts), "ok": bool(ok)}


if __name__ == "__main__":  # pragma: no cover
    run()
