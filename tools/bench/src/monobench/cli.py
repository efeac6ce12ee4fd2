"""``bench``: the workspace benchmark command line.

bench list [--package X]
bench run --package X [--package Y ...] [--device cpu|cuda] [--quick] [--case NAME] [--out DIR]
bench compare A.json B.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monobench._compare import compare_runs, render_comparison
from monobench._runner import (
    BenchError,
    discover,
    find_root,
    known_packages,
    run_package,
    write_run,
)
from monobench._schema import BenchFileError, load_run

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description="Run and compare workspace benchmarks.")
    p.add_argument(
        "--root", type=Path, default=None, help="workspace root (default: search upward)"
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="list packages and their benchmark cases")
    ls.add_argument("--package", action="append", default=None)
    r = sub.add_parser("run", help="run a package's benchmarks and write JSON + markdown")
    r.add_argument("--package", action="append", required=True, help="package name, or 'all'")
    r.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    r.add_argument("--quick", action="store_true", help="small parameter grid and few repeats")
    r.add_argument("--case", default=None, help="run only this case")
    r.add_argument("--warmup", type=int, default=3)
    r.add_argument("--repeats", type=int, default=20)
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: packages/<pkg>/benchmarks/results)",
    )
    c = sub.add_parser("compare", help="compare two results files case by case")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    return p


def _run(args: argparse.Namespace, root: Path) -> int:
    pkgs = known_packages(root) if args.package == ["all"] else args.package
    for name in pkgs:
        if name not in known_packages(root):
            raise BenchError(
                f"unknown package {name!r}; choose one of: {', '.join(known_packages(root))}"
            )
    failed = 0
    for name in pkgs:
        run = _run_one(args, root, name)
        out = args.out or root / "packages" / name / "benchmarks" / "results"
        jp, mp = write_run(run, out)
        print(mp.read_text())
        print(f"wrote {jp} and {mp}")
        failed += sum(r["status"] != "ok" for r in run["results"])
    if failed:
        print(f"bench: {failed} case(s) failed; see the 'error' fields", file=sys.stderr)
        return 1
    return 0


def _run_one(args: argparse.Namespace, root: Path, name: str) -> dict:
    try:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:  # pragma: no cover - rich is a dependency
        return run_package(
            root,
            name,
            device=args.device,
            quick=args.quick,
            only=args.case,
            warmup=args.warmup,
            repeats=args.repeats,
            progress=lambda rid: print(f"[{name}] {rid}", file=sys.stderr),
        )
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        transient=False,
    ) as bar:
        task = bar.add_task(name, total=None, current="")

        def start(n: int) -> None:
            bar.update(task, total=n)

        def step(rid: str) -> None:
            t = bar.tasks[task]
            if t.fields.get("current"):
                bar.advance(task)
            bar.update(task, current=rid)

        run = run_package(
            root,
            name,
            device=args.device,
            quick=args.quick,
            only=args.case,
            warmup=args.warmup,
            repeats=args.repeats,
            progress=step,
            on_start=start,
        )
        bar.update(task, completed=len(run["results"]), current="done")
    return run


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bench`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        root = find_root(args.root) if args.root is None else args.root.resolve()
        if args.cmd == "list":
            for name in args.package or known_packages(root):
                cases = discover(root, name)
                print(f"{name}: {len(cases)} case(s)")
                for c in cases:
                    print(f"  {c.name:<32} devices={','.join(c.devices)} points={len(c.params)}")
            return 0
        if args.cmd == "run":
            return _run(args, root)
        rows = compare_runs(load_run(args.a), load_run(args.b))
        print(render_comparison(rows))
        return 0
    except (BenchError, BenchFileError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
