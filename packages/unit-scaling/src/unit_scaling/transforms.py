"""Transforms: ``unit_scale`` (automatic conversion) and ``simulate_format`` (FP8 etc.)."""

from ._transforms import simulate_format, unit_scale

__all__ = ["simulate_format", "unit_scale"]
