import json

import pytest

from snowflake.cli import main, parse_steps


def test_parse_steps():
    assert parse_steps("10M") == 10_000_000
    assert parse_steps("300k") == 300_000
    assert parse_steps("4096") == 4096


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "transfer" in capsys.readouterr().out


def _train(out, *extra):
    args = [
        "train",
        "--env",
        "Centipede-6",
        "--policy",
        "mlp",
        "--steps",
        "128",
        "--num-envs",
        "2",
        "--rollout-steps",
        "64",
        "--minibatch",
        "32",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--quiet",
        "--threads",
        "1",
        *extra,
    ]
    assert main(args) == 0


def test_train_writes_config_and_metrics(tmp_path):
    out = tmp_path / "run"
    _train(out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["policy"] == "mlp"
    assert cfg["freeze"]["frozen"] == []
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + 2 updates
    assert (out / "final.pt").exists()


def test_train_rollout_device_is_recorded(tmp_path):
    out = tmp_path / "run"
    _train(out, "--rollout-device", "cpu", "--no-cuda-graph")
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["device"], cfg["rollout_device"]) == ("cpu", "cpu")
    assert cfg["cuda_graph"] is False
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 3


@pytest.mark.slow
def test_transfer_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    _train(out)
    assert main(["transfer", "--ckpt", str(out / "final.pt"), "--to", "8", "--episodes", "1"]) == 0
    assert "Centipede-8" in capsys.readouterr().out
    assert main(["plot", str(out), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0


def test_bad_input_reports_error(tmp_path, capsys):
    assert main(["train", "--env", "Centipede-2", "--out", str(tmp_path / "x")]) == 2
    assert "3…100" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):  # noqa: B017, PT011 - torch raises its own unpickling error type
        main(["eval", "--ckpt", str(tmp_path / "junk.pt"), "--episodes", "1"])
