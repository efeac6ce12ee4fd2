import copy
import math

import pytest
import torch

import fp8_scaling as fs
from fp8_scaling._gpt import GPT, GPTConfig, stdlib_corpus, train_steps


@pytest.mark.slow
def test_two_layer_gpt_300_steps_fp8_within_2_percent():
    torch.manual_seed(0)
    data = stdlib_corpus(500_000)
    base = GPT(GPTConfig(n_layer=2, d_model=64, n_head=4, seq_len=64))
    fp8 = fs.convert_to_float8(copy.deepcopy(base), fs.JustInTimeScaling(), auto_filter=False)
    hp = train_steps(base, data, 300, batch_size=8)["train"]
    q = train_steps(fp8, data, 300, batch_size=8)["train"]
    assert all(math.isfinite(v) for v in q)
    # final loss = mean of the last 20 steps (same batches for both runs)
    l_hp, l_q = sum(hp[-20:]) / 20, sum(q[-20:]) / 20
    assert l_hp < 3.0  # it learned something (uniform bytes: ln 256 = 5.5)
    assert abs(l_q - l_hp) / l_hp < 0.02


@pytest.mark.slow
def test_demo_runs():
    from fp8_scaling._demo import run

    out = run()
    assert out["ok"]
    assert "loss gap" in out["summary"]


@pytest.mark.slow
def test_train_demo_cli(tmp_path):
    from fp8_scaling.train_demo import main

    assert main(["--steps", "4", "--batch", "2", "--seq-len", "16", "--d-model", "16",
                 "--heads", "2", "--layers", "1", "--bytes", "20000", "--val-every", "2",
                 "--record-every", "1", "--inference", "--out", str(tmp_path)]) == 0  # fmt: skip
    for name in ("losses.json", "loss_curves.png", "bias_distribution.png", "bias_heatmap.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_train_demo_help(capsys):
    from fp8_scaling.train_demo import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "--recipes" in capsys.readouterr().out


def _part(folder, name, val, inference=False):
    import json

    steps = 10
    run = {"train": [2.0] * steps, "val": val, "val_steps": [0, 5, 8, 9],
           "final_train_loss": 2.0, "final_val_loss": val[-1], "finite": True,
           "steps_done": steps, "seconds": 1.0}  # fmt: skip
    if inference:
        run.update(inference_val_loss=1.01, val_loss_same_batches=1.0)
    folder.mkdir()
    cfg = {"steps": steps, "layers": 1, "d_model": 16}
    (folder / "losses.json").write_text(json.dumps({"config": cfg, "runs": {name: run}}))


def test_train_demo_merge_val_window(tmp_path):
    import json

    from fp8_scaling.train_demo import main

    _part(tmp_path / "a", "bf16", [3.0, 2.0, 1.0, 1.0], inference=True)
    _part(tmp_path / "b", "jit", [3.0, 9.0, 1.02, 1.02])
    out = tmp_path / "m"
    assert main(["--merge", f"{tmp_path / 'a'},{tmp_path / 'b'},{tmp_path / 'gone'}",
                 "--val-window", "3", "--out", str(out)]) == 0  # fmt: skip
    d = json.loads((out / "losses.json").read_text())
    # window of 3 steps out of 10: the validations at steps 8 and 9 only
    assert d["runs"]["jit"]["val_window_mean"] == pytest.approx(1.02)
    assert d["runs"]["jit"]["rel_val_gap_vs_hp"] == pytest.approx(0.02)
    assert d["runs"]["bf16"]["inference_rel_gap"] == pytest.approx(0.01)
    assert (out / "loss_curves.png").stat().st_size > 0
