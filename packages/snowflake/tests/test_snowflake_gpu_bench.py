"""Core assignment of the multi-process experiment script (benchmarks/gpu_bench.py)."""

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


def test_phase_b_grid_on_ten_cores_does_not_share_cores(gpu_bench):
    # Phase b's grid (2 mlp x 1 core, 4 GNN x 3 cores, 2 checks x 1 core) asks for 16 cores; on
    # the 10 cores it was given, every run must still get its own cores.
    want = [1, 1, 3, 3, 3, 3, 1, 1]
    got = gpu_bench.assign_cores(list(range(10)), want)
    flat = [c for cores in got for c in cores]
    assert len(flat) == len(set(flat)) == 10
    assert all(1 <= len(c) <= w for c, w in zip(got, want))


def test_enough_cores_keeps_requests(gpu_bench):
    want = [1, 1, 3, 3, 3, 3, 1, 1]
    got = gpu_bench.assign_cores(list(range(16)), want)
    assert [len(c) for c in got] == want
    assert sorted(c for cores in got for c in cores) == list(range(16))


def test_more_runs_than_cores_share_round_robin(gpu_bench):
    got = gpu_bench.assign_cores([4, 5], [2, 2, 2])
    assert got == [[4], [5], [4]]


def test_bad_request_raises(gpu_bench):
    with pytest.raises(ValueError, match="want >= 1"):
        gpu_bench.assign_cores([0, 1], [0])
