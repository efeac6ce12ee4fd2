import re
from pathlib import Path


def test_readme_quickstart_runs(capsys):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block, "README.md has no python block"
    exec(compile(block.group(1), "README quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert "loss" in out
