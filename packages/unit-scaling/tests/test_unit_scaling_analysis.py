"""Scale analysis on arbitrary modules: records, DataFrame, plot, assertion."""

import pytest
import torch
from torch import nn

from unit_scaling.analysis import assert_unit_scaled, plot_scales, scale_report


def test_report_on_plain_module(tmp_path):
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
    report = scale_report(model, torch.randn(128, 32))
    kinds = [r.kind for r in report]
    assert kinds.count("weight") == 4
    assert kinds.count("weight_grad") == 4
    assert kinds.count("activation") == 3  # three layers; the Sequential output is deduped
    df = report.to_dataframe()
    assert list(df.columns) == ["name", "kind", "rms", "numel", "log2_rms"]
    # a zero-initialised-style bias is excluded from the fractions
    with torch.no_grad():
        model[0].bias.zero_()
    report = scale_report(model, torch.randn(128, 32))
    assert len(report.nonzero()) == len(report) - 1
    path = plot_scales(report, str(tmp_path / "scales.png"))
    assert (tmp_path / "scales.png").stat().st_size > 1000
    assert path.endswith(".png")


def test_grads_restored():
    model = nn.Linear(4, 4)
    model.weight.grad = torch.ones(4, 4)
    scale_report(model, torch.randn(8, 4))
    assert torch.equal(model.weight.grad, torch.ones(4, 4))


def test_assert_unit_scaled_plain_model_fails():
    model = nn.Sequential(nn.Linear(256, 256), nn.Linear(256, 256))
    with pytest.raises(AssertionError, match="offending tensors"):
        assert_unit_scaled(model, torch.randn(64, 256))
