import importlib.metadata

import unit_scaling


def test_version_matches_metadata():
    assert unit_scaling.__version__ == importlib.metadata.version("unit-scaling")
