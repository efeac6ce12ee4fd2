import re
from pathlib import Path


def test_readme_quickstart_runs(capsys):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    assert "torch.Size([1, 58])" in capsys.readouterr().out
