"""Run layout of the multi-process experiment script (benchmarks/gpu_bench.py, phase b)."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_bench.py"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("snowflake_gpu_bench_script", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_phase_b_fits_twelve_cores_one_gnn_per_core(gpu_bench):
    slots = gpu_bench.experiment_slots(3)
    assert len(slots) == 12  # cores 4-15 of the 16-core machine
    runs = [r for slot in slots for r in slot]
    assert len(runs) == len({r[:3] for r in runs}) == 9 + 6
    c20 = [r for r in runs if r[0] == "Centipede-20"]
    assert sorted({r[1] for r in c20}) == ["mlp", "nervenet", "snowflake"]
    assert all(sum(r[1] == p for r in c20) == 3 for p in ("mlp", "nervenet", "snowflake"))
    for slot in slots:  # a GNN run never shares its core; only cheap MLP runs share
        assert len(slot) == 1 or all(r[1] == "mlp" for r in slot)
    c6 = [r for r in runs if r[0] == "Centipede-6"]
    assert all(r[3].split(",") == list(gpu_bench.TARGETS) for r in c6)
    assert not any(r[3] for r in c20)


def test_phase_b_on_24_cores_gives_centipede20_runs_two_cores_and_never_shares(gpu_bench):
    layout = gpu_bench.run_layout(24, 3)
    assert len(layout) == 15
    used = [c for _, cores in layout for c in cores]
    assert sorted(used) == list(range(24))  # every core used once: no run shares a core
    for (env, _, _, _), cores in layout:
        assert len(cores) == (2 if env == "Centipede-20" else 1)


def test_phase_b_on_20_cores_gives_spare_cores_to_centipede20_gnns(gpu_bench):
    layout = gpu_bench.run_layout(20, 3)
    assert sorted(c for _, cores in layout for c in cores) == list(range(20))
    gnn20 = [len(c) for (env, pol, _, _), c in layout if env == "Centipede-20" and pol != "mlp"]
    assert sorted(gnn20) == [1, 2, 2, 2, 2, 2]  # 5 spare cores, all to Centipede-20 GNN runs
    rest = [len(c) for (env, pol, _, _), c in layout if env == "Centipede-6" or pol == "mlp"]
    assert rest == [1] * 9


def test_phase_b_layout_small_and_large_core_counts(gpu_bench):
    # 12 cores: the older slot plan (GNN runs alone on a core, MLP seeds share one)
    small = gpu_bench.run_layout(12, 3)
    assert len(small) == 15
    assert {c for _, cores in small for c in cores} == set(range(12))
    # 48 cores: at most 3 per run, and the spare ones beyond that stay unused
    large = gpu_bench.run_layout(48, 3)
    assert max(len(cores) for _, cores in large) == 3
    assert len({c for _, cores in large for c in cores}) == sum(len(c) for _, c in large)


def test_phase_b_kl_suite_on_16_cores(gpu_bench):
    # The divergence-only suite: the 9 Centipede-20 runs, GNN runs on 2 cores each.
    layout = gpu_bench.run_layout(16, 3, "kl")
    assert len(layout) == 9
    assert all(env == "Centipede-20" for (env, *_), _ in layout)
    used = [c for _, cores in layout for c in cores]
    assert sorted(used) == list(range(16))
    gnn = [len(c) for (_, pol, _, _), c in layout if pol != "mlp"]
    assert gnn == [2] * 6


def test_phase_b_size_suite_on_16_cores(gpu_bench):
    # One seed per policy on Centipede-6/20/50; spare cores go to the largest agents first.
    layout = gpu_bench.run_layout(16, 3, "size")
    assert sorted({env for (env, *_), _ in layout}) == [
        "Centipede-20",
        "Centipede-50",
        "Centipede-6",
    ]
    assert len(layout) == 9
    assert sorted(c for _, cores in layout for c in cores) == list(range(16))
    by_env = {}
    for (env, *_), cores in layout:
        by_env.setdefault(env, []).append(len(cores))
    assert by_env["Centipede-50"] == [2, 2, 2]
    assert by_env["Centipede-20"] == [2, 2, 2]
