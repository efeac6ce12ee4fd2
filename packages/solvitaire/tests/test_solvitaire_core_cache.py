"""The compiled core's numba cache is keyed by all of its modules, not by each file alone."""

from __future__ import annotations

import hashlib
import os

from solvitaire import _core
from solvitaire._core import _cache


def test_package_stamp_covers_every_core_module():
    here = os.path.dirname(_cache.__file__)
    names = sorted(n for n in os.listdir(here) if n.endswith(".py"))
    assert {"dfs.py", "movegen.py", "layout.py"} <= set(names)
    h = hashlib.sha256()
    for n in names:
        h.update(n.encode())
        with open(os.path.join(here, n), "rb") as f:
            h.update(f.read())
    assert _cache.package_stamp() == h.digest()


def test_core_functions_use_the_package_locator():
    from numba.core import caching

    assert _cache.install_package_cache_key()  # idempotent: already installed on import
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    ours = [c for c in impl._locator_classes if getattr(c, "_solvitaire_package_key", False)]
    assert len(ours) == 1
    loc = ours[0].from_function(_core.search_chunk.py_func, _core.dfs.__file__)
    assert loc is not None
    assert loc.get_source_stamp() == _cache.package_stamp()
    # functions outside the package keep numba's own per-file locators
    assert ours[0].from_function(test_package_stamp_covers_every_core_module, __file__) is None
