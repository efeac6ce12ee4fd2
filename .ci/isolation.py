"""Install each package's wheel alone in a fresh venv (outside the workspace) and smoke-test it.

For each of the six packages: create a venv, install only that wheel with its declared
dependencies (a dependency on a sibling package is satisfied from the locally built sibling
wheel, never from the package index), then import it, check that the installed sibling is ours,
run its console script with --help (if it declares one) and execute its README quickstart (the
first ```python block of the package README).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib

PACKAGES = ["unit-scaling", "u-mup", "fp8-scaling", "sparq", "snowflake", "solvitaire"]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def wheel_for(dist: Path, name: str) -> Path:
    norm = name.replace("-", "_")
    found = sorted(dist.glob(f"{norm}-*.whl"))
    if len(found) != 1:
        sys.exit(f"expected one wheel for {name} in {dist}, found {[p.name for p in found]}")
    return found[0]


def quickstart(readme: Path) -> str | None:
    m = re.search(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
    return m.group(1) if m else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", type=Path, required=True)
    ap.add_argument("--venvs", type=Path, required=True)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--only", action="append")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the fresh venvs")
    args = ap.parse_args()
    failures = []
    for name in args.only or PACKAGES:
        meta = tomllib.loads((args.root / "packages" / name / "pyproject.toml").read_text())
        mod = name.replace("-", "_")
        venv = args.venvs / name
        workdir = args.venvs / f"{name}-cwd"  # run outside the repository
        workdir.mkdir(parents=True)
        try:
            sh(["uv", "venv", "--quiet", "--python", args.python, str(venv)])
            py = str(venv / "bin" / "python")
            # Only our own wheels are offered through --find-links; the sibling constraint
            # (e.g. unit-scaling>=0.1,<0.2) is not met by the unrelated project of the same name
            # on the index, so it can only resolve to the local wheel (checked below).
            sh(
                [
                    "uv",
                    "pip",
                    "install",
                    "--quiet",
                    "--python",
                    py,
                    "--find-links",
                    str(args.dist),
                    str(wheel_for(args.dist, name)),
                ]
            )
            check = (
                f"import {mod}, importlib.metadata as md; "
                f"assert {mod}.__version__ == md.version('{name}'), {mod}.__version__; "
                f"print('{name}', {mod}.__version__, {mod}.__file__)"
            )
            sh([py, "-c", check], cwd=workdir)
            if name == "u-mup":
                sh(
                    [
                        py,
                        "-c",
                        "import unit_scaling, importlib.metadata as md; "
                        "v = md.version('unit-scaling'); assert v.startswith('0.1.'), v; "
                        "import unit_scaling.functional",
                    ],
                    cwd=workdir,
                )
            for script in meta["project"].get("scripts", {}):
                sh([str(venv / "bin" / script), "--help"], cwd=workdir, stdout=subprocess.DEVNULL)
            code = quickstart(args.root / "packages" / name / "README.md")
            if code:
                (workdir / "quickstart.py").write_text(code)
                env = {
                    k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))
                }
                env["MPLBACKEND"] = "Agg"
                sh([py, "quickstart.py"], cwd=workdir, env=env)
        except subprocess.CalledProcessError as exc:
            failures.append(f"{name}: {exc}")
    if failures:
        print("\n".join(["isolation failures:", *failures]), file=sys.stderr)
        return 1
    print("every wheel installs and works alone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
