import importlib.metadata

import snowflake


def test_version_matches_metadata():
    assert snowflake.__version__ == importlib.metadata.version("snowflake")
