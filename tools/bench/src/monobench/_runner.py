"""Discover benchmark cases in the workspace and run them."""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from monobench import _registry
from monobench._env import collect_environment
from monobench._report import case_id, derive, render_markdown
from monobench._schema import SCHEMA_VERSION, validate_run
from monobench._timing import time_callable

__all__ = ["BenchError", "discover", "find_root", "known_packages", "run_package", "write_run"]


class BenchError(Exception):
    """A user-facing error: printed as one line by the CLI."""


def find_root(start: str | Path | None = None) -> Path:
    """The workspace root: the nearest ancestor with ``packages/`` and a ``pyproject.toml``."""
    here = Path(start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "packages").is_dir() and (p / "pyproject.toml").is_file():
            return p
    raise BenchError(
        f"no workspace found above {here}: run bench from the repository (or pass --root DIR)"
    )


def known_packages(root: Path) -> list[str]:
    """Names of the packages under ``root/packages``."""
    return sorted(p.name for p in (root / "packages").iterdir() if (p / "pyproject.toml").is_file())


def discover(root: Path, package: str) -> list[_registry.Case]:
    """Import ``packages/<package>/benchmarks/bench_*.py`` and return the cases they register."""
    pkgs = known_packages(root)
    if package not in pkgs:
        raise BenchError(f"unknown package {package!r}; choose one of: {', '.join(pkgs)}")
    bench_dir = root / "packages" / package / "benchmarks"
    _registry._clear()
    for path in sorted(bench_dir.glob("bench_*.py")):
        mod_name = f"_monobench_{re.sub(r'[^0-9a-zA-Z_]', '_', package)}_{path.stem}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:  # pragma: no cover - defensive
            raise BenchError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        sys.path.insert(0, str(bench_dir))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise BenchError(f"{path}: import failed: {type(exc).__name__}: {exc}") from exc
        finally:
            sys.path.remove(str(bench_dir))
    return _registry.registered_cases()


def _points(
    cases: Iterable[_registry.Case], device: str, quick: bool, only: str | None
) -> list[tuple[_registry.Case, dict[str, Any]]]:
    pts = []
    for c in cases:
        if device not in c.devices or (only is not None and c.name != only):
            continue
        for p in c.quick_params if quick else c.params:
            pts.append((c, dict(p)))
    return pts


def run_package(
    root: Path,
    package: str,
    *,
    device: str = "cpu",
    quick: bool = False,
    only: str | None = None,
    warmup: int = 3,
    repeats: int = 20,
    progress: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run every case of ``package`` on ``device`` and return the run record (schema v1).

    A case that raises is recorded with ``status="error"`` and the run goes on, so nothing already
    measured is lost.
    """
    if device not in ("cpu", "cuda"):
        raise BenchError(f"unknown device {device!r}; use 'cpu' or 'cuda'")
    if device == "cuda":
        try:
            import torch
        except ImportError:
            raise BenchError("--device cuda needs torch with CUDA; use --device cpu") from None
        if not torch.cuda.is_available():
            raise BenchError("--device cuda: no CUDA device is visible; use --device cpu")
    cases = discover(root, package)
    pts = _points(cases, device, quick, only)
    if only is not None and not pts:
        names = sorted({c.name for c in cases})
        raise BenchError(
            f"no case named {only!r} for {device}; cases: {', '.join(names) or 'none'}"
        )
    if on_start:
        on_start(len(pts))
    results = []
    for c, params in pts:
        rid = case_id(c.name, params)
        if progress:
            progress(rid)
        results.append(_run_point(c, params, rid, device, quick, warmup, repeats))
    run = {
        "schema": SCHEMA_VERSION,
        "package": package,
        "environment": collect_environment(device, str(root)),
        "settings": {"device": device, "quick": quick, "warmup": warmup, "repeats": repeats},
        "results": results,
    }
    return validate_run(run)


def _run_point(
    c: _registry.Case,
    params: dict[str, Any],
    rid: str,
    device: str,
    quick: bool,
    warmup: int,
    repeats: int,
) -> dict[str, Any]:
    rec: dict[str, Any] = {"case": c.name, "id": rid, "params": params}
    try:
        m = c.fn(device=device, **params)
        if not isinstance(m, _registry.Measure):
            raise TypeError(f"case must return monobench.Measure, got {type(m).__name__}")
        if m.check is not None:
            m.check()
        w = m.warmup if m.warmup is not None else warmup
        n = m.repeats if m.repeats is not None else repeats
        if quick:
            n = min(n, 5)
            w = min(w, 1)
        cand = time_callable(m.candidate, device=device, warmup=w, repeats=n, mode=m.timing)
        base = (
            time_callable(m.baseline, device=device, warmup=w, repeats=n, mode=m.timing)
            if m.baseline is not None
            else None
        )
        rec.update(
            status="ok",
            error=None,
            candidate_label=m.candidate_label,
            baseline_label=m.baseline_label,
            candidate=cand.to_dict(),
            baseline=(
                base.to_dict()
                if base is not None
                else {"median_s": float(m.baseline_seconds or 0), "recorded": True}
            ),
            bytes=m.bytes,
            flops=m.flops,
            timing=m.timing,
            extra=_jsonable(m.extra),
        )
        rec.update(derive(m, cand, base))
    except Exception as exc:
        rec.update(status="error", error=f"{type(exc).__name__}: {exc}", speedup=None)
        rec["traceback"] = traceback.format_exc(limit=8)
    return rec


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "-", text).strip("-").lower()[:40] or "device"


def write_run(run: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``<package>_<date>_<device>.json`` and ``.md`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    date = _dt.date.today().isoformat()
    dev = run["environment"]["device_name"]
    if run["environment"]["device"] == "cpu":
        dev = "cpu"
    stem = f"{run['package']}_{date}_{_slug(dev)}"
    if run["settings"].get("quick"):
        stem += "_quick"
    jp, mp = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    jp.write_text(json.dumps(run, indent=2, sort_keys=False) + "\n")
    mp.write_text(render_markdown(run))
    return jp, mp
