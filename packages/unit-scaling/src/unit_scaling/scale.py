"""Scaling primitives: ``scale_fwd``, ``scale_bwd`` and the combined ``scale``."""

from ._scale import Scale, scale, scale_bwd, scale_fwd

__all__ = ["Scale", "scale", "scale_bwd", "scale_fwd"]
