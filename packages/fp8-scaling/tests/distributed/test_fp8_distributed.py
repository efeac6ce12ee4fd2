"""FP8 training under FSDP2 (2 processes) against one process.

The CPU variant (gloo, emulated FP8 GEMMs) runs in the default suite as the CI check; the 2-GPU
variant (NCCL, real FP8 GEMMs on Hopper) is marked ``gpu`` and ``slow``. Launch by hand:

    python -m torch.distributed.run --standalone --nproc-per-node 2 \
        packages/fp8-scaling/tests/distributed/fp8_dist_worker.py --backend nccl --out results/
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).parent / "fp8_dist_worker.py"
STEPS = 50
_TEARDOWN_ABORT = "terminate called without an active exception"


def _worker_module():
    spec = importlib.util.spec_from_file_location("fp8_dist_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(tmp_path: Path, backend: str) -> tuple[dict, dict]:
    single = _worker_module().train("single", backend, STEPS)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(WORKER), "--mode", "fsdp2", "--backend", backend, "--steps", str(STEPS),
        "--out", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kw = {"capture_output": True, "text": True, "env": env, "timeout": 600, "check": False}
    proc = subprocess.run(cmd, **kw)
    if proc.returncode != 0 and _TEARDOWN_ABORT in proc.stderr + proc.stdout:
        # a worker aborted in gloo's C++ teardown (a torch flake, not a result): run once more
        proc = subprocess.run(cmd, **kw)
    if proc.returncode != 0:  # the workers' tracebacks, without torch's debug logging
        keep = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "DEBUG" not in ln]
        raise AssertionError("\n".join(keep)[-12000:])
    fsdp = json.loads((tmp_path / "fsdp2.json").read_text())
    _keep({"single": single, "fsdp2": fsdp}, backend)
    return single, fsdp


def _keep(records: dict[str, dict], backend: str) -> None:
    """Also write the run records to ``$DIST_RESULTS_DIR/<package>-<backend>/`` when that is set
    (``tools/distributed_check.sh`` sets it to keep them as results)."""
    root = os.environ.get("DIST_RESULTS_DIR")
    if root:
        out = Path(root) / f"fp8-scaling-{backend}"
        out.mkdir(parents=True, exist_ok=True)
        for name, rec in records.items():
            (out / f"{name}.json").write_text(json.dumps(rec, indent=1))


def _check(single: dict, fsdp: dict) -> None:
    assert fsdp["world_size"] == 2
    assert fsdp["n_fp8_layers"] == single["n_fp8_layers"] == 2  # fc1, fc2 (the 1-wide head stays)
    # every cast's amax was reduced, and both ranks used the same amax (so the same scale) each time
    assert fsdp["n_amax_reductions"] > 0
    assert fsdp["same_amax_on_all_ranks"] is True
    # the shards really are uneven / empty on one rank
    r0, r1 = fsdp["shard_numel"]
    assert r0["embed.weight"] != r1["embed.weight"]
    assert 0 in (r0["out.bias"], r1["out.bias"])
    a, b = torch.tensor(single["losses"]), torch.tensor(fsdp["losses"])
    assert torch.isfinite(b).all()
    assert b[-10:].mean() < 0.5 * b[:5].mean(), "the FP8 model trains"
    # Same global amax → same scales; what differs is the order in which the two shards' gradients
    # are summed. A last-bit difference that moves one value across an E4M3 rounding boundary
    # changes it by up to 2^-3 relative, so the curves drift slightly apart. Gate: every step
    # within 1 % of the single run's mean loss, and the last 10 steps' mean within 1 %. (A
    # per-step relative gate is ill-conditioned here: the per-batch loss dips to 0.03 while its
    # mean is 0.1; on 2 H200s the largest step difference was 6e-4, 1.8 % of a 0.04 step.)
    scale = a.abs().mean()
    worst = (b - a).abs().max() / scale
    assert worst < 0.01, f"max loss difference {worst:.3%} of the mean loss"
    end = (b[-10:].mean() / a[-10:].mean() - 1).abs()
    assert end < 0.01, f"last-10-step mean loss differs by {end:.3%}"


def test_gloo_fsdp2_fp8_matches_one_process(tmp_path):
    _check(*_run(tmp_path, "gloo"))


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA devices"
)
def test_nccl_fsdp2_fp8_two_gpus(tmp_path):
    os.environ.setdefault("LOCAL_RANK", "0")
    _check(*_run(tmp_path, "nccl"))
