"""The README quickstart runs as written."""

from pathlib import Path


def test_readme_quickstart_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("```python", 1)[1].split("```", 1)[0]
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    assert ns["y"].shape == (2, 8, 1, 64)
