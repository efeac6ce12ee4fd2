"""How often the JIT scale of a tensor equals the previous step's (the one-pass cast's guess).

``python packages/fp8-scaling/benchmarks/spec_hit_rate.py OUT.json [--steps 300] [--device cpu]``
trains the demo GPT (:mod:`fp8_scaling._gpt`) with the JIT recipe, records every layer's bias
per role at every step (:class:`fp8_scaling.ScaleRecorder`), and reports, per role, the share of
(layer, step) pairs whose bias equals the same layer's bias one step earlier: that is the share
of casts where the one-pass JIT cast (``cast_backend="spec"``) reads the input once; the rest
read it twice and write the FP8 copies twice (cast, then recast). Steps before ``--skip``
(warm-up) are left out.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    import fp8_scaling as fs
    from fp8_scaling._gpt import GPT, GPTConfig, stdlib_corpus, train_steps

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--skip", type=int, default=20, help="warm-up steps left out")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    cfg = GPTConfig(n_layer=args.layers, d_model=args.d_model, n_head=4, seq_len=64)
    model = GPT(cfg).to(args.device)
    fs.convert_to_float8(model, fs.JustInTimeScaling(), auto_filter=False)
    rec = fs.ScaleRecorder(model, every=1)
    data = stdlib_corpus(400_000)
    train_steps(model, data, args.steps, device=args.device, recorder=rec)
    bias: dict = collections.defaultdict(dict)
    for r in rec.to_records():
        bias[(r["layer"], r["role"])][r["step"]] = r["bias"]
    same: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    changes = collections.Counter()
    for (_layer, role), by_step in bias.items():
        for s, b in by_step.items():
            if s < args.skip or (s - 1) not in by_step:
                continue
            total[role] += 1
            same[role] += b == by_step[s - 1]
            changes[abs(b - by_step[s - 1])] += 1
    res = {
        "model": {"layers": args.layers, "d_model": args.d_model, "steps": args.steps},
        "skip": args.skip,
        "hit_rate": {k: same[k] / total[k] for k in total},
        "hit_rate_all": sum(same.values()) / max(sum(total.values()), 1),
        "pairs": dict(total),
        "bias_change_histogram": {str(k): v for k, v in sorted(changes.items())},
    }
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
