"""``umup`` command line: ``umup sweep lr``, ``umup sweep independent``, ``umup plot``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _ints(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {s!r}") from None


def _lr_exps(s: str) -> list[float]:
    try:
        lo, hi = (int(x) for x in s.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI log2 exponents, got {s!r}") from None
    if hi < lo:
        raise argparse.ArgumentTypeError(f"empty LR range {s!r}: need LO <= HI")
    return [2.0**e for e in range(lo, hi + 1)]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="results file (.jsonl; a .csv mirror is kept)")
    p.add_argument("--parametrization", default="umup", choices=("umup", "mup", "sp"))
    p.add_argument(
        "--lr-exp",
        type=_lr_exps,
        default=None,
        help="log2 LR grid LO:HI (default -4:4 for umup, -11:-3 otherwise)",
    )
    p.add_argument("--seeds", type=_ints, default=[0], help="comma-separated seeds")
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--head-dim", type=int, default=16)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--data", default="stdlib", help="'stdlib', 'markov' or a text-file path")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--fp8", action="store_true", help="simulate FP8 linears (E4M3 fwd, E5M2 bwd)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="umup", description="u-μP hyperparameter-transfer sweeps (resumable) and plots."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    sw = sub.add_parser("sweep", help="run a sweep").add_subparsers(dest="kind", required=True)
    lr = sw.add_parser("lr", help="sweep η across widths (LR transfer)")
    _common(lr)
    lr.add_argument("--widths", type=_ints, default=[64, 128, 256])
    ind = sw.add_parser("independent", help="η sweep, then each α alone at the best η, combined")
    _common(ind)
    ind.add_argument("--width", type=int, default=128)
    ind.add_argument(
        "--alpha-exp",
        type=_lr_exps,
        default=[0.25, 0.5, 1.0, 2.0, 4.0],
        help="log2 grid of each α, LO:HI (default -2:2)",
    )
    pl = sub.add_parser("plot", help="draw loss vs LR per width (and loss vs each α) to PNG")
    pl.add_argument("results", help="a .jsonl results file written by 'umup sweep'")
    pl.add_argument("--out", default=None, help="PNG path (default: <results>.png)")
    pl.add_argument("--title", default="")
    return ap


def _base(a: argparse.Namespace, width: int = 128):
    from ._train import RunSpec

    return RunSpec(
        parametrization=a.parametrization,
        width=width,
        n_layers=a.n_layers,
        head_dim=a.head_dim,
        steps=a.steps,
        batch_size=a.batch_size,
        seq_len=a.seq_len,
        data=a.data,
        weight_decay=a.weight_decay,
        device=a.device,
        dtype=a.dtype,
        fp8=a.fp8,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``umup`` script; returns the exit status."""
    a = _parser().parse_args(argv)
    from ._store import SweepStore

    if a.cmd == "plot":
        from pathlib import Path

        from ._plot import plot_sweep
        from ._sweep import lr_transfer_summary

        store = SweepStore(a.results)
        if not store.records:
            print(f"no runs in {a.results}", file=sys.stderr)
            return 1
        out = plot_sweep(store.records, a.out or Path(a.results).with_suffix(".png"), a.title)
        print(f"wrote {out}")
        plain = [r for r in store.records if not r["spec"].get("alphas")]
        if plain:
            print(json.dumps(lr_transfer_summary(plain), indent=1))
        return 0
    from ._sweep import lr_transfer_summary, sweep_independent, sweep_lr

    if a.threads > 0:
        import torch

        torch.set_num_threads(a.threads)
    store = SweepStore(a.out)
    lrs = a.lr_exp or _lr_exps("-4:4" if a.parametrization == "umup" else "-11:-3")
    if a.kind == "lr":
        recs = sweep_lr(store, _base(a), a.widths, lrs, a.seeds)
        print(json.dumps(lr_transfer_summary(recs), indent=1))
    else:
        res = sweep_independent(store, _base(a, a.width), lrs, a.alpha_exp, a.seeds)
        print(json.dumps(res, indent=1, default=str))
    print(f"results: {store.path} (+ {store.path.with_suffix('.csv').name})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
