"""Scale analysis: ``scale_report``, ``assert_unit_scaled`` and ``plot_scales`` for any module."""

from ._analysis import ScaleRecord, ScaleReport, assert_unit_scaled, plot_scales, scale_report

__all__ = ["ScaleRecord", "ScaleReport", "assert_unit_scaled", "plot_scales", "scale_report"]
