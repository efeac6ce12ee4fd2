"""The divergence-round scripts: core sharing (benchmarks/kl_runs.py) and the merge of rounds
(benchmarks/kl_merge.py) on synthetic per-update metrics."""

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(_DIR))  # kl_runs imports kl_merge by name
    try:
        spec = importlib.util.spec_from_file_location(
            f"snowflake_{name}_script", _DIR / f"{name}.py"
        )
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(_DIR))
    return mod


@pytest.fixture(scope="module")
def kl_runs():
    return _load("kl_runs")


@pytest.fixture(scope="module")
def kl_merge():
    return _load("kl_merge")


def test_share_cores_uses_every_core_once_and_favours_gnn_runs(kl_runs):
    runs, ncores = kl_runs.parse_runs("mlp:0,nervenet:0,snowflake:0,mlp:1,nervenet:1")
    assert ncores is None
    blocks = kl_runs.share_cores(runs, list(range(8, 32)))
    flat = [c for b in blocks for c in b]
    assert sorted(flat) == list(range(8, 32))  # 24 cores, none shared, none idle
    sizes = dict(zip(runs, map(len, blocks)))
    assert min(sizes[r] for r in runs if r[0] != "mlp") >= max(
        sizes[r] for r in runs if r[0] == "mlp"
    )
    assert kl_runs.share_cores(runs, [0, 1]) == [[0], [1], [0], [1], [0]]  # fewer cores: wrap
    with pytest.raises(ValueError, match="policy:seed"):
        kl_runs.parse_runs("mlp")
    runs, ncores = kl_runs.parse_runs("mlp:0:4,nervenet:0:6")
    assert ncores == [4, 6]
    assert kl_runs.share_cores(runs, list(range(8, 32)), ncores) == [
        list(range(8, 12)),
        list(range(12, 18)),
    ]


def _write(path: Path, rows: dict[str, dict[str, np.ndarray]]) -> None:
    cols = ["run", "global_step", *kl_merge_metrics()]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for name, c in rows.items():
            for i in range(len(c["global_step"])):
                w.writerow([name] + [c[k][i] for k in cols[1:]])


def kl_merge_metrics() -> tuple[str, ...]:
    return ("approx_kl", "clip_frac", "kl_exact", "kl_update", "clip_frac_update")


def test_merge_of_two_rounds_gives_seed_means_and_ratios(kl_merge, tmp_path):
    rng = np.random.default_rng(0)

    def run(n: int) -> dict[str, np.ndarray]:
        c = {k: rng.uniform(0.001, 0.5, n) for k in kl_merge_metrics()}
        c["global_step"] = 2048.0 * np.arange(1, n + 1)
        return c

    a = {f"Centipede-20_{p}_s0": run(5) for p in ("mlp", "nervenet", "snowflake")}
    b = {f"Centipede-20_{p}_s1": run(4) for p in ("mlp", "nervenet", "snowflake")}
    b["Centipede-20_mlp_s0"] = {k: v[:2] for k, v in a["Centipede-20_mlp_s0"].items()}  # shorter
    _write(tmp_path / "a.csv", a)
    _write(tmp_path / "b.csv", b)
    runs = kl_merge.read_metrics([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert len(runs["Centipede-20_mlp_s0"]["global_step"]) == 5  # the longer copy is kept
    s = kl_merge.summarize(runs)
    assert s["k_common"] == 4
    allr = {**b, **a}
    for pol in ("mlp", "nervenet", "snowflake"):
        r = s["policies"][pol]
        assert r["seeds"] == [0, 1]
        assert r["updates"] == [5, 4]
        want = np.mean([allr[f"Centipede-20_{pol}_s{k}"]["approx_kl"].mean() for k in (0, 1)])
        assert r["approx_kl"] == pytest.approx(want, rel=1e-12)  # float64 sums, same order
        first = np.mean([allr[f"Centipede-20_{pol}_s{k}"]["clip_frac"][:4].mean() for k in (0, 1)])
        assert r["clip_frac_first_k"] == pytest.approx(first, rel=1e-12)
    nn, mlp = s["policies"]["nervenet"], s["policies"]["mlp"]
    assert nn["approx_kl_over_mlp"] == pytest.approx(nn["approx_kl"] / mlp["approx_kl"])
    assert nn["clip_frac_over_mlp_per_seed"][1] == pytest.approx(
        nn["per_seed"][1]["clip_frac"] / mlp["per_seed"][1]["clip_frac"]
    )
    whole = kl_merge.windows(runs)[-1].split("|")  # the "whole run" row
    assert whole[1].strip() == "whole run"
    nn_ratio, sf_ratio = (float(x) for x in whole[4].split("/"))  # approx_kl column
    assert nn_ratio == pytest.approx(nn["approx_kl_over_mlp"], abs=0.005)  # printed to 2 decimals
    assert sf_ratio == pytest.approx(s["policies"]["snowflake"]["approx_kl_over_mlp"], abs=0.005)
    text = kl_merge.markdown(s, "note")
    assert "| nervenet | 1 |" in text
    assert "target >= 1.5" in text
