import importlib.metadata

import fp8_scaling


def test_version_matches_metadata():
    assert fp8_scaling.__version__ == importlib.metadata.version("fp8-scaling")
