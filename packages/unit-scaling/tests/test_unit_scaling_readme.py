"""The README quickstart runs as written, and the demo hook works."""

import pathlib
import re

import pytest

import unit_scaling
from unit_scaling import _demo

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_executes(capsys):
    text = README.read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "tensors have RMS in [1/2, 2]" in out
    assert namespace["report"].fraction_within(0.5, 2.0) >= 0.95


@pytest.mark.slow  # two widths x two models on natural text: > 5 s
def test_demo_runs():
    result = _demo.run()
    assert result["ok"] is True
    assert "w64" in result["summary"]


def test_public_api():
    for name in unit_scaling.__all__:
        assert hasattr(unit_scaling, name)
