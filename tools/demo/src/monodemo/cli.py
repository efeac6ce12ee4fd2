"""``demo``: a CPU tour of the six packages, one short real demonstration each.

Each package provides ``<import>._demo.run() -> {"summary": str, "ok": bool}``; a package whose
demonstration is not there yet is listed as such. The tour ends with a summary table and exits
non-zero if any demonstration failed its own check.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from dataclasses import dataclass

__all__ = ["PACKAGES", "main"]

#: (distribution, import name) in tour order.
PACKAGES: tuple[tuple[str, str], ...] = (
    ("unit-scaling", "unit_scaling"),
    ("u-mup", "u_mup"),
    ("fp8-scaling", "fp8_scaling"),
    ("sparq", "sparq"),
    ("snowflake", "snowflake"),
    ("solvitaire", "solvitaire"),
)


@dataclass
class Row:
    package: str
    status: str
    seconds: float
    summary: str


def _run_one(dist: str, mod: str) -> Row:
    t0 = time.perf_counter()
    try:
        demo = importlib.import_module(f"{mod}._demo")
    except ModuleNotFoundError as exc:
        if exc.name in (f"{mod}._demo", mod):
            return Row(dist, "not yet", 0.0, "no demonstration in this version of the package")
        raise
    try:
        out = demo.run()
        ok = bool(out.get("ok"))
        summary = str(out.get("summary", ""))
        status = "ok" if ok else "FAILED"
    except Exception as exc:
        traceback.print_exc()
        status, summary = "ERROR", f"{type(exc).__name__}: {exc}"
    return Row(dist, status, time.perf_counter() - t0, summary)


def main(argv: list[str] | None = None) -> int:
    """Run the tour; returns 0 when every present demonstration passed its check."""
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", default=None, help="run only this package (repeatable)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    known = {d for d, _ in PACKAGES}
    if args.only and (bad := sorted(set(args.only) - known)):
        parser.error(f"unknown package(s) {bad}; choose from {sorted(known)}")
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = []
    t_all = time.perf_counter()
    for dist, mod in PACKAGES:
        if args.only and dist not in args.only:
            continue
        console.rule(f"[bold]{dist}")
        rows.append(_run_one(dist, mod))
    table = Table(title=f"Demo summary ({time.perf_counter() - t_all:.0f} s on CPU)")
    table.add_column("package")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("result")
    colour = {"ok": "green", "not yet": "yellow"}
    for r in rows:
        c = colour.get(r.status, "red")
        table.add_row(r.package, f"[{c}]{r.status}[/{c}]", f"{r.seconds:.1f} s", r.summary)
    console.print(table)
    return 0 if all(r.status in ("ok", "not yet") for r in rows) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
