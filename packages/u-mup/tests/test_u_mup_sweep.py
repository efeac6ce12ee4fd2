import json

import pytest

from u_mup import cli
from u_mup._store import SweepStore
from u_mup._sweep import lr_transfer_summary


def _rec(p, w, lr, loss, seed=0):
    spec = {"parametrization": p, "width": w, "lr": lr, "seed": seed, "steps": 1}
    return {"spec": spec, "loss": loss, "val_loss": loss, "diverged": loss is None}


def test_store_resumes_and_rejects_corruption(tmp_path):
    path = tmp_path / "s.jsonl"
    st = SweepStore(path)
    st.append(_rec("umup", 32, 0.5, 2.0))
    st.append(_rec("umup", 32, 1.0, 1.5))
    again = SweepStore(path)
    assert len(again) == 2
    from u_mup._train import RunSpec

    assert RunSpec(parametrization="umup", width=32, lr=0.5, steps=1).key() in again
    assert (tmp_path / "s.csv").read_text().count("\n") == 3
    with path.open("a") as f:
        f.write('{"spec": {"width": 3')  # a run cut off mid-write
    with pytest.raises(ValueError, match=r"s\.jsonl' line 3 is corrupt.*delete line 3"):
        SweepStore(path)
    assert path.read_text().count("\n") == 2  # completed runs are untouched


def test_summary_counts_grid_steps():
    recs = [
        _rec("sp", 32, 2.0**-4, 1.0),
        _rec("sp", 32, 2.0**-6, 1.2),
        _rec("sp", 256, 2.0**-4, None),
        _rec("sp", 256, 2.0**-6, 0.9),
        _rec("umup", 32, 1.0, 1.0),
        _rec("umup", 256, 1.0, 0.8),
        _rec("umup", 256, 2.0, 0.85),
    ]
    s = lr_transfer_summary(recs)
    assert s["sp"]["argmin_shift_steps"] == -2  # diverged runs count as +inf loss
    assert s["umup"]["argmin_shift_steps"] == 0
    assert s["umup"]["loss_monotone_in_width"]


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert "sweep" in capsys.readouterr().out


def _corpus(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_bytes(b"the quick brown fox jumps over the lazy dog. " * 200)
    return f


def test_cli_tiny_sweep_resume_and_plot(tmp_path):
    out = tmp_path / "r.jsonl"
    f = _corpus(tmp_path)
    args = [
        "sweep",
        "lr",
        "--out",
        str(out),
        "--widths",
        "16,32",
        "--lr-exp=-1:0",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--seq-len",
        "8",
        "--head-dim",
        "8",
        "--data",
        str(f),
    ]
    assert cli.main(args) == 0
    assert len(SweepStore(out)) == 4
    assert cli.main(args) == 0  # resumed: nothing re-run
    assert len(SweepStore(out)) == 4
    png = tmp_path / "r.png"
    assert cli.main(["plot", str(out), "--out", str(png)]) == 0
    assert png.stat().st_size > 1000


@pytest.mark.slow
def test_cli_independent_search(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    f = _corpus(tmp_path)
    ind = [
        "sweep",
        "independent",
        "--out",
        str(out),
        "--width",
        "16",
        "--lr-exp=-1:-1",
        "--alpha-exp=-1:0",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--seq-len",
        "8",
        "--head-dim",
        "8",
        "--data",
        str(f),
    ]
    assert cli.main(ind) == 0
    txt = capsys.readouterr().out
    assert '"best_alphas"' in txt
    assert '"default_gap_paired"' in txt
    assert '"improvement_paired"' in txt
    png = tmp_path / "r.png"
    assert cli.main(["plot", str(out), "--out", str(png)]) == 0  # adds the loss-vs-α panels
    assert png.stat().st_size > 1000
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert any(r["spec"]["alphas"] for r in recs)


def test_paired_gap_by_seed():
    from u_mup.sweep import paired_gap

    def rec(seed, loss):
        return {"spec": {"seed": seed}, "loss": loss}

    ref = [rec(0, 1.1), rec(1, 2.2), rec(2, 3.0)]
    alt = [rec(0, 1.0), rec(1, 2.0), rec(2, 3.0), rec(3, 9.0)]  # seed 3 has no partner
    g = paired_gap(ref, alt)
    xs = [0.1, 0.1, 0.0]  # per-seed ratios − 1, by hand
    m = sum(xs) / 3
    se = (sum((x - m) ** 2 for x in xs) / 2 / 3) ** 0.5
    assert g["n_seeds"] == 3
    assert g["mean"] == pytest.approx(m, rel=1e-12)
    assert g["se"] == pytest.approx(se, rel=1e-12)
    assert paired_gap(ref[:1], alt) is None  # one seed: no standard error
    assert paired_gap([rec(0, None), rec(1, 1.0)], alt) is None  # a diverged row drops its seed
