import pytest


@pytest.mark.slow
def test_demo_runs_and_reports():
    from u_mup._demo import run

    res = run()
    assert set(res) == {"summary", "ok"}
    assert isinstance(res["ok"], bool)
    assert "u-μP" in res["summary"]
