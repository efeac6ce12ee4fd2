import importlib.metadata

import u_mup


def test_version_matches_metadata():
    assert u_mup.__version__ == importlib.metadata.version("u-mup")
