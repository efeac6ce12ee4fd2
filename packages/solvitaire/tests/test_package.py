import importlib.metadata

import solvitaire


def test_version_matches_metadata():
    assert solvitaire.__version__ == importlib.metadata.version("solvitaire")
