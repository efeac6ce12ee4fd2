"""The tuning script when its time budget runs out inside a shape (CPU interpreter or CUDA).

A cut shape must still yield a table entry built from the stages measured before the cut,
checked against the package reference and timed against dense, instead of no entry at all.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
import types
from pathlib import Path

import pytest
import torch

triton = pytest.importorskip("triton")

INTERP = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cpu" if INTERP else ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(
    DEVICE is None, reason="needs CUDA or TRITON_INTERPRET=1 set before Python starts"
)

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "tune_sparq.py"


@pytest.fixture
def tune():
    spec = importlib.util.spec_from_file_location("sparq_tune_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(tune, deadline, clock=None):
    if clock is not None:  # a fake clock: each budget check advances it by one "second"
        tune.time = types.SimpleNamespace(monotonic=clock, perf_counter=time.perf_counter)
    detail = {}
    sh = tune.SMOKE["tiny_gqa"]
    got = tune.tune_shape("tiny_gqa", sh, DEVICE, 1, deadline, detail, smoke=True)
    assert got is not None, detail
    entry, sets, fns = got
    tune.pipeline("tiny_gqa", sh, DEVICE, 1, entry, sets, fns, detail)
    return entry, detail["tiny_gqa"]


@pytest.mark.slow  # ~7 s under the interpreter (tunes one tiny shape)
def test_budget_spent_before_the_shape_still_gives_a_checked_entry(tune):
    entry, d = _run(tune, deadline=-math.inf)
    assert d["budget_cut"] == "prep"
    assert all("skipped" in v for v in d["prep"].values())
    assert entry["prep"] == "torch"
    assert "step1" not in entry
    assert "step2" not in entry
    # the pipeline (dispatch defaults) passed the reference check (3e-2 relative, bf16/fp16
    # inputs) and was timed, so the dense verdict is a measured one
    assert "error" not in d["pipeline"]
    assert d["pipeline"]["rel_err_vs_fp32_reference"] <= 3e-2
    assert isinstance(entry["dense_faster"], bool)
    assert entry["t_sparq_s"] > 0


@pytest.mark.slow  # ~8 s under the interpreter
def test_budget_cut_after_step1_keeps_the_measured_stages(tune):
    ticks = iter(range(10**6))
    # calls 0-1: the two prep variants, 2-3: the two step-1 variants, then past the deadline
    entry, d = _run(tune, deadline=3.5, clock=lambda: next(ticks))
    assert d["budget_cut"] == "select"
    assert any("s" in v for v in d["step1"].values())
    assert entry["step1"] in tune._few(tune.STEP1, True)
    assert "step2" not in entry
    assert d["pipeline"]["rel_err_vs_fp32_reference"] <= 3e-2
    assert isinstance(entry["dense_faster"], bool)


def test_committed_table_is_valid_and_its_launch_parameters_run(monkeypatch):
    import json

    from sparq._reference import sparq_attention_reference
    from sparq.kernels import sparq_attention_triton
    from sparq.kernels._tuned import TUNED_PATH

    data = json.loads(TUNED_PATH.read_text())
    assert data["device"].startswith("NVIDIA")
    assert data["shapes"]
    for key, entry in data["shapes"].items():
        # measured entries only: a verdict and both times, and SparQ kept only where faster
        assert entry["dense_faster"] == (entry["t_dense_s"] <= entry["t_sparq_s"]), key
        # the entry's launch parameters on a small MHA shape (its S is too short for the
        # 2048-sample selection chunk, so the dispatch falls back to the exact Triton selection)
        monkeypatch.setattr("sparq.kernels._dispatch.tuned_entry", lambda _k, e=entry: e)
        g = torch.Generator().manual_seed(0)
        B, H, S, dh = 2, 2, 200, 64
        q = torch.randn(B, H, 1, dh, generator=g).to(DEVICE, torch.float16)
        K, V = (torch.randn(B, H, S, dh, generator=g).to(DEVICE, torch.float16) for _ in "kv")
        lens = torch.tensor([S, 150], device=DEVICE)
        vm = torch.stack([V[b, :, : int(n)].float().mean(1) for b, n in enumerate(lens)])
        kw = dict(r=8, k=40, local_window=8, sink_tokens=2, v_mean=vm, seq_lens=lens,
                  K_t=K.transpose(-1, -2).contiguous(), reallocation=True)  # fmt: skip
        y = sparq_attention_triton(q, K, V, dense_fallback=False, **kw).float()
        ref = sparq_attention_reference(q, K, V, **kw).float()
        # fp16 inputs, fp32 accumulation: a few fp16 ulps of the output scale
        assert (y - ref).abs().max() <= 2**-8 * ref.abs().max(), key


def test_tuned_table_env_var_empty_means_committed_unreadable_warns(monkeypatch, tmp_path):
    from sparq.kernels import _tuned

    seen = []
    real_read = Path.read_text

    def read(self, *a, **k):
        seen.append(self)
        return real_read(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", read)
    monkeypatch.setenv("SPARQ_TUNED_JSON", "")
    _tuned.reload()
    try:
        _tuned._table()
        assert seen == [_tuned.TUNED_PATH]  # empty: the committed table, no warning
        monkeypatch.setenv("SPARQ_TUNED_JSON", str(tmp_path / "missing.json"))
        _tuned.reload()
        with pytest.warns(UserWarning, match="missing.json.*untuned defaults"):
            assert _tuned._table() == {}
    finally:
        monkeypatch.undo()
        _tuned.reload()
