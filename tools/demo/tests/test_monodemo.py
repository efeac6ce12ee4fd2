import sys
import types

import pytest

from monodemo import cli


@pytest.fixture
def fake_packages(monkeypatch):
    good = types.ModuleType("fakegood._demo")
    good.run = lambda: {"summary": "all fine", "ok": True}
    bad = types.ModuleType("fakebad._demo")
    bad.run = lambda: {"summary": "check failed", "ok": False}
    monkeypatch.setitem(sys.modules, "fakegood._demo", good)
    monkeypatch.setitem(sys.modules, "fakebad._demo", bad)


def test_rows_reflect_each_demo(fake_packages):
    assert cli._run_one("good", "fakegood").status == "ok"
    assert cli._run_one("bad", "fakebad").status == "FAILED"
    missing = cli._run_one("absent", "no_such_package_xyz")
    assert missing.status == "not yet"


def test_exit_code_is_nonzero_when_a_demo_fails(fake_packages, monkeypatch, capsys):
    monkeypatch.setattr(cli, "PACKAGES", (("good", "fakegood"),))
    assert cli.main([]) == 0
    monkeypatch.setattr(cli, "PACKAGES", (("good", "fakegood"), ("bad", "fakebad")))
    assert cli.main([]) == 1
    out = capsys.readouterr().out
    assert "Demo summary" in out
    assert "check failed" in out


def test_unknown_package_is_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--only", "nope"])
    assert exc.value.code == 2
    assert "unknown package" in capsys.readouterr().err
