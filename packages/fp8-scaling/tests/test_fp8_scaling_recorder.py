import csv

import pytest
import torch

import fp8_scaling as fs
from fp8_scaling._gpt import GPT, GPTConfig, stdlib_corpus, train_steps


def test_recorder_table_and_plots_from_20_steps(tmp_path):
    torch.manual_seed(0)
    model = fs.convert_to_float8(GPT(GPTConfig(n_layer=1, d_model=16, n_head=2, seq_len=8)))
    rec = fs.ScaleRecorder(model, every=5)
    data = stdlib_corpus(20_000)
    train_steps(model, data, 20, batch_size=2, callback=lambda s: rec.step())
    df = rec.to_dataframe()
    # 4 FP8 layers x 3 roles x 4 recorded steps (0, 5, 10, 15)
    assert len(df) == 4 * 3 * 4
    assert set(df["role"]) == {"weight", "activation", "gradient"}
    assert sorted(df["step"].unique()) == [0, 5, 10, 15]
    assert df["bias"].between(-31, 31).all()
    # JIT scaling with margin 0: nothing saturates
    assert (df["saturated_pct"] == 0).all()
    rec.to_csv(tmp_path / "s.csv")
    with open(tmp_path / "s.csv") as f:
        assert len(list(csv.DictReader(f))) == len(df)
    p1 = fs.plot_bias_distribution(df, tmp_path / "dist.png")
    p2 = fs.plot_bias_heatmap(rec, tmp_path / "heat.png", role="gradient")
    for p in (p1, p2):
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    rec.remove()


def test_underflow_and_saturation_statistics():
    lin = fs.Float8Linear(16, 16, bias=False, recipe=fs.ConstantScaling(bias=0))
    rec = fs.ScaleRecorder(lin, roles=("activation",))
    x = torch.zeros(4, 16)
    x[0, :4] = 1e-4  # below half the smallest E4M3 subnormal (2**-10 ≈ 9.8e-4): flushed to 0
    x[1, :4] = 1000.0  # above 448: saturated
    x[2, :8] = 1.0
    lin(x)
    (r,) = rec.to_records()
    assert r["bias"] == 0
    assert r["underflow_pct"] == pytest.approx(100 * 4 / 16)  # of the 16 non-zero values
    assert r["saturated_pct"] == pytest.approx(100 * 4 / 64)  # of all 64 values
    with pytest.raises(ValueError, match="every"):
        fs.ScaleRecorder(lin, every=0)
    with pytest.raises(ValueError, match="roles"):
        fs.ScaleRecorder(lin, roles=("bias",))
