import json
import textwrap

import pytest

from monobench import Measure
from monobench._compare import compare_runs, render_comparison
from monobench._report import case_id, derive
from monobench._runner import run_package, write_run
from monobench._schema import BenchFileError, load_run
from monobench._timing import Timing, summarize, time_callable
from monobench.cli import main

BENCH_FILE = textwrap.dedent(
    """
    import time
    from monobench import Measure, case

    @case("sleepy", params=[{"ms": 1}, {"ms": 2}], quick_params=[{"ms": 1}], devices=("cpu",))
    def sleepy(ms, device):
        return Measure(candidate=lambda: time.sleep(ms / 1e3),
                       baseline=lambda: time.sleep(2 * ms / 1e3),
                       bytes=1e6, peak_bytes_per_s=1e9, extra={"ms": ms})

    @case("recorded", devices=("cpu",))
    def recorded(device):
        return Measure(candidate=lambda: time.sleep(0.001), baseline_seconds=0.004)

    @case("broken", devices=("cpu",))
    def broken(device):
        raise RuntimeError("boom")
    """
)


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers=['packages/*']\n")
    pkg = tmp_path / "packages" / "demo-pkg"
    (pkg / "benchmarks").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text("[project]\nname='demo-pkg'\n")
    (pkg / "benchmarks" / "bench_demo.py").write_text(BENCH_FILE)
    return tmp_path


def test_summarize_statistics():
    t = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert t.median_s == 3.0
    assert t.min_s == 1.0
    assert t.max_s == 5.0
    assert t.iqr_s == pytest.approx(2.0)  # inclusive quartiles of 1..5 are 2 and 4
    with pytest.raises(ValueError, match="empty"):
        summarize([])


def test_derive_ratio_and_roofline_arithmetic():
    m = Measure(
        candidate=lambda: None,
        baseline=lambda: None,
        bytes=2e9,
        flops=4e12,
        peak_bytes_per_s=4e9,
        peak_flops=1e13,
    )
    cand = Timing(0.5, 0.0, 0.5, 0.5, 3)
    base = Timing(2.0, 0.0, 2.0, 2.0, 3)
    d = derive(m, cand, base)
    assert d["speedup"] == pytest.approx(4.0)
    assert d["achieved_gb_s"] == pytest.approx(4.0)  # 2e9 B / 0.5 s
    assert d["achieved_tflop_s"] == pytest.approx(8.0)
    # bandwidth fraction 4e9/4e9 = 1.0, flop fraction 8e12/1e13 = 0.8: the larger is reported
    assert d["roofline_fraction"] == pytest.approx(1.0)
    rec = Measure(candidate=lambda: None, baseline_seconds=3.0)
    assert derive(rec, cand, None)["speedup"] == pytest.approx(6.0)


def test_measure_needs_a_baseline():
    with pytest.raises(ValueError, match="baseline"):
        Measure(candidate=lambda: None)


def test_time_callable_counts_calls():
    calls = []
    t = time_callable(lambda: calls.append(1), warmup=2, repeats=7)
    assert len(calls) == 9
    assert t.repeats == 7


def test_timing_mode_is_validated():
    with pytest.raises(ValueError, match="pipelined"):
        Measure(candidate=lambda: None, baseline=lambda: None, timing="async")
    with pytest.raises(ValueError, match="pipelined"):
        time_callable(lambda: None, mode="async")
    calls = []
    t = time_callable(lambda: calls.append(1), warmup=1, repeats=4, mode="pipelined")
    assert (len(calls), t.repeats) == (5, 4)  # on CPU the pipelined mode times each call alike


def test_case_id_is_sorted_and_stable():
    assert case_id("mm", {"n": 3, "b": 1}) == "mm[b=1,n=3]"
    assert case_id("mm", {}) == "mm"


def test_run_write_load_round_trip_and_compare(workspace, tmp_path):
    run = run_package(workspace, "demo-pkg", warmup=1, repeats=3)
    by_id = {r["id"]: r for r in run["results"]}
    assert set(by_id) == {"sleepy[ms=1]", "sleepy[ms=2]", "recorded", "broken"}
    assert by_id["broken"]["status"] == "error"
    assert "boom" in by_id["broken"]["error"]
    s = by_id["sleepy[ms=2]"]
    assert s["status"] == "ok"
    # the recorded speed-up is the ratio of the recorded medians (no timing assumption: the
    # machine may be loaded)
    assert s["speedup"] == pytest.approx(s["baseline"]["median_s"] / s["candidate"]["median_s"])
    assert s["candidate"]["repeats"] == 3
    assert s["extra"] == {"ms": 2}
    assert by_id["recorded"]["baseline"]["recorded"] is True
    jp, mp = write_run(run, tmp_path / "out")
    again = load_run(jp)
    assert again == json.loads(json.dumps(run))
    md = mp.read_text()
    assert "| sleepy[ms=2] |" in md
    assert "speed-up" in md.lower()
    rows = compare_runs(run, again)
    ok = [r for r in rows if "time_ratio" in r]
    assert all(r["time_ratio"] == pytest.approx(1.0) for r in ok)
    assert "broken" in render_comparison(rows)


def test_quick_grid(workspace):
    run = run_package(workspace, "demo-pkg", quick=True, only="sleepy")
    assert [r["id"] for r in run["results"]] == ["sleepy[ms=1]"]


def test_cli_errors_are_one_line(workspace, tmp_path, capsys):
    assert main(["--root", str(workspace), "run", "--package", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "unknown package 'nope'" in err[0]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["compare", str(bad), str(bad)]) == 2
    assert "invalid JSON" in capsys.readouterr().err
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(BenchFileError, match="not a monobench/1"):
        load_run(wrong)
    assert main(["compare", str(tmp_path / "missing.json"), str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cli_run_writes_files_and_reports_failures(workspace, tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(
        [
            "--root",
            str(workspace),
            "run",
            "--package",
            "demo-pkg",
            "--repeats",
            "2",
            "--warmup",
            "0",
            "--out",
            str(out),
        ]
    )
    assert rc == 1  # the 'broken' case failed, but everything else was written
    files = sorted(p.suffix for p in out.iterdir())
    assert files == [".json", ".md"]
    assert "1 case(s) failed" in capsys.readouterr().err
