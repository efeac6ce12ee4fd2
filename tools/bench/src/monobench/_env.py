"""Record the environment a benchmark ran in."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import os
import platform
import subprocess
from typing import Any

__all__ = ["collect_environment", "device_name"]

_PACKAGES = (
    "unit-scaling",
    "u-mup",
    "fp8-scaling",
    "sparq",
    "snowflake",
    "solvitaire",
    "monobench",
    "torch",
    "triton",
    "numpy",
    "numba",
    "transformers",
    "mujoco",
    "gymnasium",
)


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def device_name(device: str) -> str:
    """Human-readable name of ``device`` ("cpu" → the processor, "cuda" → the GPU)."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores)"


def _git_sha(cwd: str | None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha or None


def collect_environment(device: str, repo_root: str | None = None) -> dict[str, Any]:
    """Versions of the relevant packages, python, device name, git sha and UTC date."""
    versions = {name: v for name in _PACKAGES if (v := _version(name)) is not None}
    try:
        import torch

        versions.setdefault("torch", torch.__version__)
    except ImportError:
        pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "device_name": device_name(device),
        "git_sha": _git_sha(repo_root),
        "versions": versions,
    }
