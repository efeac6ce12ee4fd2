"""Built-in token sources (no download): see :mod:`u_mup._data`."""

from ._data import ByteCorpus, MarkovSource, make_source, stdlib_corpus

__all__ = ["ByteCorpus", "MarkovSource", "make_source", "stdlib_corpus"]
