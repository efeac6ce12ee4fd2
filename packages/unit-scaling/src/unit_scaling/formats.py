"""Number formats: ``FPFormat`` (any ExMy) and the predefined OCP/FNUZ FP8, FP4 and FP16."""

from ._formats import E2M1, E4M3, E4M3FNUZ, E5M2, E5M2FNUZ, FP16, FPFormat

__all__ = ["E2M1", "E4M3", "E4M3FNUZ", "E5M2", "E5M2FNUZ", "FP16", "FPFormat"]
