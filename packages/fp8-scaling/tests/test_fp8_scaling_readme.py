import pathlib
import re


def test_readme_quickstart_runs(capsys):
    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "torch.Size([4, 64])" in out
    assert "'role': 'activation'" in out
