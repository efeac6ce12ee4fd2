"""One numba cache key for the whole compiled package.

numba's on-disk cache (``cache=True``) checks only the source file of the function it loads:
a function whose callee in another module changed would be loaded stale. The locator below
keys every compiled function of this package by a hash of all of the package's modules, so a
change to any of them recompiles everything. It uses numba's cache-locator classes, whose
names changed between releases (``_InTreeCacheLocator`` / ``InTreeCacheLocator``); where
neither exists, numba's default per-file key stays in place (an installed package does not
change, so only a modified source tree could then load a stale function).
"""

from __future__ import annotations

import functools
import hashlib
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=8)
def _package_stamp(stat_key: tuple) -> bytes:
    """SHA-256 of every module of the package (``stat_key``: their names, mtimes and sizes)."""
    h = hashlib.sha256()
    for name, _mtime, _size in stat_key:
        h.update(name.encode())
        with open(os.path.join(_HERE, name), "rb") as f:
            h.update(f.read())
    return h.digest()


def package_stamp() -> bytes:
    """The cache key of the compiled package: a hash of all its ``.py`` files."""
    names = sorted(n for n in os.listdir(_HERE) if n.endswith(".py"))
    key = []
    for n in names:
        st = os.stat(os.path.join(_HERE, n))
        key.append((n, st.st_mtime, st.st_size))
    return _package_stamp(tuple(key))


def install_package_cache_key() -> bool:
    """Put the package-wide locator first in numba's locator list (once); return whether it
    is installed."""
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - numba always has it in supported releases
        return False
    base = getattr(caching, "InTreeCacheLocator", None) or getattr(
        caching, "_InTreeCacheLocator", None
    )
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    if base is None or impl is None or not hasattr(impl, "_locator_classes"):
        return False  # pragma: no cover - a numba release without these classes
    for cls in impl._locator_classes:
        if getattr(cls, "_solvitaire_package_key", False):
            return True

    class PackageKeyLocator(base):
        """numba's in-tree locator, keyed by the whole package instead of one file."""

        _solvitaire_package_key = True

        def get_source_stamp(self):
            return package_stamp()

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != _HERE:
                return None
            return super().from_function(py_func, py_file)

    impl._locator_classes.insert(0, PackageKeyLocator)
    return True
