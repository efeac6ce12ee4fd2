"""Command line: ``sparq eval {recall,lm,train}`` and ``sparq cost``."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparq", description="SparQ Attention tools.")
    sub = p.add_subparsers(dest="cmd", required=True)

    ev = sub.add_parser("eval", help="offline accuracy harness on the committed models")
    evs = ev.add_subparsers(dest="what", required=True)
    for name, hlp in (("recall", "associative recall accuracy"), ("lm", "byte-level LM bits/byte")):
        e = evs.add_parser(name, help=hlp)
        e.add_argument("--out", default=None, help="folder for the JSON table and PNG plot")
        e.add_argument("--checkpoint", default=None, help="model file (default: committed one)")
        e.add_argument("--methods", nargs="+", default=None, help="subset of methods")
        e.add_argument("--compressions", nargs="+", type=float, default=[2, 4, 8, 16])
        e.add_argument("--samples", type=int, default=256, help="recall sequences / LM windows")
        e.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    tr = evs.add_parser("train", help="re-train an evaluation model on CPU")
    tr.add_argument("kind", choices=["recall", "lm"])
    tr.add_argument("--out", required=True, help="checkpoint path to write")
    tr.add_argument("--steps", type=int, default=None)
    tr.add_argument("--minutes", type=float, default=None, help="stop after this wall time")
    tr.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    tr.add_argument("--lr", type=float, default=None)

    co = sub.add_parser("cost", help="bytes moved per decode step, dense vs SparQ")
    co.add_argument("--B", type=int, default=1)
    co.add_argument("--Hq", type=int, default=32)
    co.add_argument("--Hkv", type=int, default=32)
    co.add_argument("--S", type=int, required=True)
    co.add_argument("--dh", type=int, default=128)
    co.add_argument("--r", type=int, default=None)
    co.add_argument("--k", type=int, default=None)
    co.add_argument("--compression", type=float, default=8.0)
    return p


def _progress():
    from rich.console import Console

    con = Console(stderr=True)
    return lambda msg: con.log(msg)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sparq`` command."""
    args = _parser().parse_args(argv)
    if args.cmd == "cost":
        from sparq import cost

        r, k = args.r, args.k
        if r is None or k is None:
            r0, k0 = cost.rk_for_compression(args.S, args.dh, args.compression)
            r, k = r if r is not None else r0, k if k is not None else k0
        dense = cost.decode_bytes(args.B, args.Hq, args.Hkv, args.S, args.dh)
        sp = cost.decode_bytes(args.B, args.Hq, args.Hkv, args.S, args.dh, r=r, k=k)
        out = {
            "r": r,
            "k": k,
            "dense_bytes": dense,
            "sparq_bytes": sp,
            "compression": dense / sp,
            "dense_roofline_ms": 1e3 * cost.roofline_seconds(dense),
            "sparq_roofline_ms": 1e3 * cost.roofline_seconds(sp),
        }
        print(json.dumps(out, indent=1))
        return 0
    from sparq import eval as sev
    from sparq.baselines import METHODS

    if args.what == "train":
        limit = args.minutes * 60 if args.minutes else None
        if args.kind == "recall":
            model, meta = sev.train_recall(
                steps=args.steps or 2000,
                time_limit_s=limit,
                device=args.device,
                lr=args.lr or 3e-3,
            )
        else:
            model, meta = sev.train_byte_lm(
                steps=args.steps or 1500, time_limit_s=limit, device=args.device
            )
        sev.save_checkpoint(args.out, model, meta)
        print(f"saved {args.out}")
        return 0
    methods = tuple(args.methods) if args.methods else METHODS
    bad = [m for m in methods if m not in METHODS]
    if bad:
        print(f"unknown methods {bad}; choose from {list(METHODS)}", file=sys.stderr)
        return 2
    kw = {"methods": methods, "compressions": args.compressions, "progress": _progress(),
          "device": args.device}  # fmt: skip
    if args.what == "recall":
        res = sev.run_recall_eval(
            args.out, checkpoint=args.checkpoint, n_samples=args.samples, **kw
        )
        metric = "accuracy"
    else:
        res = sev.run_lm_eval(args.out, checkpoint=args.checkpoint, n_windows=args.samples, **kw)
        metric = "bpb"
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"sparq eval {args.what}")
    for col in ("method", "budget", "transfer", metric):
        t.add_column(col)
    for r in res["rows"]:
        cb = "1" if r["method"] == "dense" else f"1/{r['compression']:g}"
        t.add_row(r["method"], cb, f"{r['transfer']:.3f}", f"{r[metric]:.4f}")
    Console().print(t)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
