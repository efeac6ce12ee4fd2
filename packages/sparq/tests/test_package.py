import importlib.metadata

import sparq


def test_version_matches_metadata():
    assert sparq.__version__ == importlib.metadata.version("sparq")
